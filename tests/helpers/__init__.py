"""The template's tests' helpers: what the test modules (`tests/test_*.py`) share, apart from
them. `conftest.py` holds the fixtures and loads the plugins among these."""

from . import cli

cli(prog_name=f"python -m {__package__}")

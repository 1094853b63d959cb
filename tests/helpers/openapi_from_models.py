"""An OpenAPI document of a rendered Flask or Django project's routes, for the fuzz test.

FastAPI writes its own from its routes; Flask and Django have none, so this one is built from
the pydantic models their routes validate with, read in the project's own environment: the
rendered models.
"""

import json
from pathlib import Path

from helpers.probes import package_of
from helpers.processes import run_one_off

# Each route: method, path, the module of the package it comes with (None: every project has it)
# and the model of its JSON body (None: no body).
ROUTES = [
    ("get", "/healthz", None, None),
    ("get", "/readyz", None, None),
    ("get", "/notes", "models", None),
    ("post", "/notes", "schemas", "NoteIn"),
    ("post", "/jobs/example", "jobs", "ExampleJob"),
]
REF = "#/components/schemas/{model}"
# The fuzz test judges every answer itself; the document need not list them.
ANSWERS = {"default": {"description": "Any answer."}}

MODEL_SCHEMAS = """
import importlib, json, os, sys
if sys.argv[3]:  # Django's: its models load once Django has the project's shape
    os.environ["DJANGO_SETTINGS_MODULE"] = sys.argv[3]
    import django
    django.setup()
from pydantic.json_schema import models_json_schema
models = [getattr(importlib.import_module(m), name) for m, name in json.loads(sys.argv[1])]
_, schema = models_json_schema([(m, "validation") for m in models], ref_template=sys.argv[2])
print(json.dumps(schema.get("$defs", {})))
"""


def model_schemas(project: Path, models: list[tuple[str, str]]) -> dict[str, dict]:
    """The JSON schemas of these models (module, class), by name, each reference made `REF`."""
    package = package_of(project)
    django = (project / "src" / package / "django_base_settings.py").exists()
    shape = f"{package}.django_base_settings" if django else ""
    command = ["python", "-c", MODEL_SCHEMAS, json.dumps(models), REF, shape]
    read = run_one_off(project, command, {})
    assert read.returncode == 0, read.stderr
    return json.loads(read.stdout)


def openapi_document(project: Path) -> dict:
    """OpenAPI 3.1 for the routes this project has, request bodies from its own models."""
    package = package_of(project)
    present = [
        route
        for route in ROUTES
        if route[2] is None or (project / "src" / package / f"{route[2]}.py").exists()
    ]
    models = [(f"{package}.{module}", model) for _, _, module, model in present if model]
    paths: dict[str, dict] = {}
    for method, path, _module, model in present:
        operation: dict = {"responses": ANSWERS}
        if model:
            schema = {"$ref": REF.format(model=model)}
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": schema}},
            }
        paths.setdefault(path, {})[method] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": package, "version": "0"},
        "paths": paths,
        "components": {"schemas": model_schemas(project, models)},
    }

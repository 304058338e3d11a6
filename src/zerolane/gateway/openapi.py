"""Routes from an upstream's OpenAPI document (3.x, JSON or YAML).

Each operation with an ``operationId`` becomes a route: the method and path template
as written, action = the ``operationId``, resource = ``<upstream name>/<path template>``
(``/reports/{id}`` of upstream ``finance`` -> ``finance/reports/{id}``), sensitivity =
the operation's ``x-zerolane-sensitivity`` when present. Operations without an
``operationId`` are left unmapped, so they are denied.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from zerolane.errors import InvalidInput
from zerolane.gateway.routes import Route, make_route

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
MAX_BYTES = 8 << 20
SENSITIVITY_KEY = "x-zerolane-sensitivity"


def _load(path: Path) -> dict[str, Any]:
    try:
        if path.stat().st_size > MAX_BYTES:
            raise InvalidInput("config.openapi", f"{path} is larger than 8 MiB")
        text = path.read_text(encoding="utf-8")
        doc = yaml.safe_load(text) if path.suffix in (".yaml", ".yml") else json.loads(text)
    except (OSError, UnicodeDecodeError) as err:
        raise InvalidInput("config.openapi", f"cannot read {path}: {err}") from err
    except (ValueError, yaml.YAMLError) as err:
        raise InvalidInput("config.openapi", f"{path} is not valid JSON/YAML: {err}") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("paths"), dict):
        raise InvalidInput("config.openapi", f"{path} has no 'paths' object")
    version = doc.get("openapi")
    if not isinstance(version, str) or not version.startswith("3."):
        raise InvalidInput("config.openapi", f"{path} is not an OpenAPI 3 document")
    return doc


def _resource(upstream: str, template: str) -> str:
    stripped = template.strip("/")
    return f"{upstream}/{stripped}" if stripped else upstream


def import_routes(path: Path, upstream: str, where: str) -> list[Route]:
    """The routes of the OpenAPI document at ``path`` for upstream ``upstream``."""
    doc = _load(path)
    routes: list[Route] = []
    for template, item in doc["paths"].items():
        if not isinstance(item, dict):
            raise InvalidInput("config.openapi", f"{path}: paths.{template} is not an object")
        for method in METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            action = operation.get("operationId")
            if action is None:
                continue
            sensitivity = operation.get(SENSITIVITY_KEY)
            here = f"{where}openapi {method.upper()} {template}: "
            if not isinstance(action, str) or (
                sensitivity is not None and not isinstance(sensitivity, str)
            ):
                raise InvalidInput(
                    "config.openapi", f"{here}operationId and {SENSITIVITY_KEY} are strings"
                )
            routes.append(
                make_route(
                    method, template, action, _resource(upstream, template), sensitivity, here
                )
            )
    return routes

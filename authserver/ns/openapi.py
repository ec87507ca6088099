"""The ns REST API's OpenAPI 3.1 document, served to integrators at ``/v1/openapi.json`` and ``.yaml``.

The document (``openapi.json`` beside this file) is written by hand to say what ``api.py`` does, status by
status; ``tests/test_openapi.py`` checks every answer of a running system against it, so the two cannot
drift apart unnoticed. It is JSON because the server has no YAML library among its dependencies; the YAML
form is produced from it here (block style, which any YAML 1.1 or 1.2 parser reads back to the same data),
for the tools and people that prefer it.
"""

import json
import re
from functools import cache
from importlib import resources
from typing import Any

from flask import Flask, Response

DOCUMENT_FILE = "openapi.json"
# Keys that can stay unquoted in YAML: identifier-like and not a word YAML 1.1 reads as a bool or null.
_PLAIN_KEY = re.compile(r"[A-Za-z_$][A-Za-z0-9_$.-]*")
_YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "~"}


@cache
def document_text() -> str:
    """The document as shipped, read once: served byte for byte, so its member order stays readable."""
    return resources.files("authserver.ns").joinpath(DOCUMENT_FILE).read_text(encoding="utf-8")


def load_document() -> dict[str, Any]:
    """A fresh copy of the document, for callers that inspect or adapt it (tests, tooling)."""
    document = json.loads(document_text())
    assert isinstance(document, dict)
    return document


def _key(key: str) -> str:
    if _PLAIN_KEY.fullmatch(key) and key.lower() not in _YAML_WORDS:
        return key
    return json.dumps(key, ensure_ascii=False)


def _literal_block(text: str) -> bool:
    """Multi-line prose reads best as a literal block; only when the block form keeps it exactly."""
    if "\n" not in text.rstrip("\n") or text.endswith("\n\n") or text.startswith((" ", "\n")):
        return False
    return all(ch == "\n" or ch.isprintable() for ch in text)


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    # JSON numbers and JSON double-quoted strings (escapes included) are valid YAML scalars as they are.
    return json.dumps(value, ensure_ascii=False)


def _yaml_lines(value: Any, indent: int) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, dict | list) and item:
                lines.append(f"{pad}{_key(key)}:")
                lines.extend(_yaml_lines(item, indent + 2))
            elif isinstance(item, str) and _literal_block(item):
                lines.append(f"{pad}{_key(key)}: |{'' if item.endswith(chr(10)) else '-'}")
                lines.extend(f"{pad}  {line}" if line else "" for line in item.rstrip("\n").split("\n"))
            else:
                lines.append(f"{pad}{_key(key)}: {_container_or_scalar(item)}")
    else:
        for item in value:
            if isinstance(item, dict | list) and item:
                nested = _yaml_lines(item, indent + 2)
                nested[0] = f"{pad}- {nested[0].lstrip()}"
                lines.extend(nested)
            else:
                lines.append(f"{pad}- {_container_or_scalar(item)}")
    return lines


def _container_or_scalar(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list):
        return "[]"
    return _scalar(value)


def to_yaml(data: dict[str, Any]) -> str:
    """Block-style YAML for JSON data: enough for this document without adding a YAML library to ns."""
    return "\n".join(_yaml_lines(data, 0)) + "\n"


@cache
def document_yaml() -> str:
    return to_yaml(load_document())


def add_openapi_routes(app: Flask) -> None:
    """Serve the document without credentials: it describes the API, it grants nothing."""

    @app.get("/v1/openapi.json")
    def openapi_json() -> Response:
        return Response(document_text(), mimetype="application/json")

    @app.get("/v1/openapi.yaml")
    def openapi_yaml() -> Response:
        return Response(document_yaml(), mimetype="application/yaml")

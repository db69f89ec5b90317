"""The configuration reference: every key of the core and of each enabled plugin, with
its env name, TOML section, default and the ``#:`` comment above it in the class.

``eneca-bot config`` prints it as Markdown; the README's table is this output, and a test
keeps the two equal.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from pydantic import SecretStr
from pydantic_core import PydanticUndefined
from pydantic_settings import BaseSettings

from core.config.settings import env_name

_FIELD = re.compile(r"^\s+(\w+)\s*:")


@dataclass(frozen=True, slots=True)
class Key:
    section: str
    name: str
    env: str
    default: str
    doc: str


def _comments(settings_cls: type[BaseSettings]) -> dict[str, str]:
    docs: dict[str, str] = {}
    for cls in reversed(settings_cls.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseSettings)):
            continue
        try:
            lines = inspect.getsource(cls).splitlines()
        except (OSError, TypeError):
            continue
        pending: list[str] = []
        for line in lines:
            stripped = line.strip()
            if stripped.startswith("#:"):
                pending.append(stripped[2:].strip())
                continue
            match = _FIELD.match(line)
            if match and pending:
                docs[match.group(1)] = " ".join(pending)
            if stripped and not stripped.startswith("#"):
                pending = []
    return docs


def _default(field: object) -> str:
    default = getattr(field, "default", PydanticUndefined)
    factory = getattr(field, "default_factory", None)
    if default is PydanticUndefined and factory is not None:
        default = factory()
    if default is None or default is PydanticUndefined or default == []:
        return ""
    if isinstance(default, SecretStr):
        return "(secret)"
    if isinstance(default, list):
        return ",".join(map(str, default))
    if isinstance(default, bool):
        return str(default).lower()
    return str(default)


def keys(models: Iterable[type[BaseSettings]]) -> list[Key]:
    result = []
    for model in models:
        docs = _comments(model)
        section = getattr(model, "section", "") or "?"
        for name, field in model.model_fields.items():
            result.append(
                Key(section, name, env_name(model, name), _default(field), docs.get(name, ""))
            )
    return result


def markdown(models: Iterable[type[BaseSettings]]) -> str:
    rows = ["| env | TOML `[section]` key | default | what it does |", "|---|---|---|---|"]
    for key in keys(models):
        doc = key.doc.replace("|", "\\|")
        default = f"`{key.default}`" if key.default else ""
        rows.append(f"| `{key.env}` | `[{key.section}]` {key.name} | {default} | {doc} |")
    return "\n".join(rows) + "\n"

"""Where a setting's value came from, so an error about it can say so.

The layers are, lowest first: default < TOML file < ``.env`` < environment < flags.
A bad ``port = "x"`` in the file is reported as ``config/settings.toml [core] port``, not
as ``PORT``, so the operator looks in the right place.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

#: Overrides the ``eneca-bot`` command line sets, shown as their flag.
FLAGS = {"host": "--host", "port": "--port"}


def _env_name(settings_cls: type[BaseSettings], field_name: str) -> str:
    prefix = settings_cls.model_config.get("env_prefix", "") or ""
    return f"{prefix}{field_name}".upper()


def read_dotenv(env_file: Path | None) -> set[str]:
    """The (upper-cased) names a ``.env`` file sets; none when it is missing."""
    if env_file is None:
        return set()
    try:
        lines = env_file.read_text(encoding="utf-8").splitlines()
    except OSError:
        return set()
    names = set()
    for line in lines:
        line = line.strip()
        if line.startswith("export "):
            line = line[len("export ") :].lstrip()
        if line and not line.startswith("#") and "=" in line:
            names.add(line.split("=", 1)[0].strip().upper())
    return names


def toml_section(settings_cls: type[BaseSettings], document: Mapping[str, Any]) -> dict[str, Any]:
    """The keys of ``document`` that ``settings_cls`` reads (lower-cased names)."""
    section_name = getattr(settings_cls, "section", "")
    section = document.get(section_name, {}) if section_name else {}
    if not isinstance(section, dict):
        section = {}
    if section_name == "core":
        top = {k: v for k, v in document.items() if not isinstance(v, dict)}
        section = {**top, **section}
    return {k.lower(): v for k, v in section.items()}


def source_of(
    settings_cls: type[BaseSettings],
    field_name: str,
    *,
    document: Mapping[str, Any],
    config_file: Path | None,
    env_file: Path | None,
    overrides: Mapping[str, Any],
) -> str:
    """Where the value of ``field_name`` was read: the highest layer that sets it."""
    env = _env_name(settings_cls, field_name)
    if field_name in overrides:
        flag = FLAGS.get(field_name) if getattr(settings_cls, "section", "") == "core" else None
        return f"{flag} (flag)" if flag else f"{env} (override)"
    if env in {name.upper() for name in os.environ}:
        return f"{env} (environment variable)"
    if env in read_dotenv(env_file):
        return f"{env} (in {env_file})"
    if field_name in toml_section(settings_cls, document):
        section = getattr(settings_cls, "section", "")
        top_level = section == "core" and field_name not in {
            k.lower() for k in (document.get("core") or {})
        }
        where = "top level" if top_level else f"[{section}]"
        return f"{config_file or 'the config file'} {where} {field_name}"
    return env

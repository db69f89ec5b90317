"""Strict configuration: every key and section of the TOML file must mean something.

A typo (``prot = 9000``, ``[telegramm]``) would otherwise be ignored silently and the
default used instead. :func:`check_document` names each unknown key with its file and
section, and the closest known name when there is one. A section of a plugin that is
installed but not enabled is accepted, with a note: enabling the plugin makes it count.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings

#: The section of the gateway's own keys (also allowed at the top level of the file).
CORE_SECTION = "core"


@dataclass(frozen=True, slots=True)
class DocumentReport:
    """What :func:`check_document` found: ``errors`` stop start-up, ``notes`` do not."""

    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _hint(name: str, known: Iterable[str], shown: str = "`{}`") -> str:
    close = difflib.get_close_matches(name.lower(), sorted(set(known)), n=1, cutoff=0.6)
    return f"; did you mean {shown.format(close[0])}?" if close else ""


#: The settings classes that read one section (the core section is read by several).
Readers = type[BaseSettings] | Sequence[type[BaseSettings]]


def _fields(readers: Readers) -> set[str]:
    models = readers if isinstance(readers, Sequence) else [readers]
    return {name for model in models for name in model.model_fields}


def check_document(
    document: Mapping[str, Any],
    path: Path,
    sections: Mapping[str, Readers],
    installed: Iterable[str] = (),
) -> DocumentReport:
    """Compare the parsed TOML ``document`` of ``path`` with the settings that read it.

    ``sections`` maps each section of a running plugin (and ``core``) to the settings
    class (or classes) that read it; ``installed`` names the plugins that are installed,
    enabled or not.
    """
    report = DocumentReport()
    core_keys = _fields(sections[CORE_SECTION]) if CORE_SECTION in sections else set()
    idle = set(installed) - set(sections)
    for key, value in document.items():
        if isinstance(value, dict):
            _check_section(key, value, path, sections, idle, report)
        elif key.lower() not in core_keys:
            report.errors.append(
                f"{path}: unknown key `{key}` at the top level (the gateway's own keys)"
                f"{_hint(key, core_keys)}"
            )
    return report


def _check_section(
    name: str,
    values: Mapping[str, Any],
    path: Path,
    sections: Mapping[str, Readers],
    idle: set[str],
    report: DocumentReport,
) -> None:
    model = sections.get(name)
    if model is None:
        if name in idle:
            report.notes.append(
                f"{path}: section [{name}] belongs to plugin {name!r}, which is installed "
                "but not enabled (PLUGINS): its keys are not read"
            )
            return
        report.errors.append(
            f"{path}: unknown section [{name}]{_hint(name, [*sections, *idle], '[{}]')}"
        )
        return
    known = _fields(model)
    for key in values:
        if key.lower() not in known:
            report.errors.append(
                f"{path}: unknown key `{key}` in section [{name}]{_hint(key, known)}"
            )

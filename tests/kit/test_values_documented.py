"""docs/values.md documents every field of the values plugins exchange (Message, Reply,
Chunk, AgentRequest...) with the type and default the code has, like the hooks reference.

Each ``### Name`` section holds a table whose rows are ``| `field` | `type` | default |
meaning |``; the first three columns must equal what the dataclass declares, in order, and
the meaning must not be empty.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from core import (
    AgentRequest,
    Check,
    Chunk,
    DeliveryResult,
    Message,
    Passage,
    Reply,
    ReplyError,
    SessionCleared,
    Tool,
    ToolResult,
    Turn,
)

DOC = Path(__file__).resolve().parents[2] / "docs" / "values.md"
VALUES = {
    cls.__name__: cls
    for cls in (
        Message,
        Reply,
        ReplyError,
        Chunk,
        SessionCleared,
        AgentRequest,
        Turn,
        Tool,
        ToolResult,
        DeliveryResult,
        Check,
        Passage,
    )
}
SECTION = re.compile(r"^### (\w+)\s*$", re.MULTILINE)
ROW = re.compile(r"^\| `\w+` \|.*\|$", re.MULTILINE)
PIPE = re.compile(r"(?<!\\)\|")


def _default(field: dataclasses.Field) -> str:
    if field.default is not dataclasses.MISSING:
        return f"`{field.default!r}`"
    factory = field.default_factory
    if factory is dataclasses.MISSING:
        return "required"
    made = factory()  # type: ignore[misc]
    if isinstance(made, float):
        return "now"
    if isinstance(made, str):
        return "a new random id"
    return f"`{made!r}`"


def expected_rows(cls: type) -> list[tuple[str, str, str]]:
    return [(f.name, str(f.type), _default(f)) for f in dataclasses.fields(cls)]


def documented() -> dict[str, list[tuple[str, str, str, str]]]:
    text = DOC.read_text(encoding="utf-8")
    headings = list(SECTION.finditer(text))
    sections = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        body = text[heading.end() : following.start() if following else len(text)]
        rows = []
        for match in ROW.finditer(body):
            cells = [cell.strip().replace("\\|", "|") for cell in PIPE.split(match[0])[1:-1]]
            name, kind, default, meaning = cells
            rows.append((name.strip("`"), kind.strip("`"), default, meaning))
        sections[heading.group(1)] = rows
    return sections


@pytest.mark.parametrize("name", sorted(VALUES))
def test_every_value_is_documented_with_the_fields_the_code_has(name):
    sections = documented()
    assert name in sections, f"docs/values.md has no '### {name}' section"
    rows = sections[name]
    assert [row[:3] for row in rows] == expected_rows(VALUES[name]), (
        f"the table of {name} in docs/values.md differs from the code; expected rows:\n"
        + "\n".join(f"| `{n}` | `{t}` | {d} | ... |" for n, t, d in expected_rows(VALUES[name]))
    )
    assert all(row[3] for row in rows), f"a field of {name} has no meaning in docs/values.md"


def test_no_section_documents_a_value_that_does_not_exist():
    assert set(documented()) - set(VALUES) == set()


def test_the_check_catches_a_renamed_field():
    @dataclasses.dataclass
    class Renamed:
        conversation: str

    assert expected_rows(Renamed) != [row[:3] for row in documented()["Message"]][:1]

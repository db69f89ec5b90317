"""docs/plugins.md documents every hook with the signature the code has (the way
datasette's ``test_plugin_hooks_are_documented`` keeps its hooks reference honest)."""

import inspect
import re
from pathlib import Path

import pytest

from core import hookspecs

DOC = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
SECTION = re.compile(r"^#### (\w+)\s*$", re.MULTILINE)
FIRST_CODE_LINE = re.compile(r"```python\n(?P<line>[^\n]*)\n")


def _hookspecs() -> dict[str, object]:
    return {
        name: function
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, "eneca_bot_spec")
    }


def _documented() -> dict[str, str]:
    """Each hook section's heading -> the first line of the first Python block under it."""
    text = DOC.read_text(encoding="utf-8")
    headings = list(SECTION.finditer(text))
    sections = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        body = text[heading.end() : following.start() if following else len(text)]
        code = FIRST_CODE_LINE.search(body)
        sections[heading.group(1)] = code.group("line").strip() if code else ""
    return sections


def _signature_of(name: str, function: object) -> str:
    """``def name(arg: Type, ...) -> Return`` as written in hookspecs.py (annotations are
    strings there: ``from __future__ import annotations``)."""
    signature = inspect.signature(function)
    params = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    return f"def {name}({params}) -> {signature.return_annotation}"


def _normalise(line: str) -> str:
    return re.sub(r"\s+", " ", line.rstrip(":")).replace("( ", "(").replace(" )", ")")


HOOKS = _hookspecs()


def test_the_hookspecs_module_declares_hooks():
    assert len(HOOKS) >= 10


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hook_has_a_section_with_its_signature(name):
    documented = _documented()
    assert name in documented, f"docs/plugins.md has no '#### {name}' section"
    assert _normalise(documented[name]) == _normalise(_signature_of(name, HOOKS[name])), (
        f"the signature documented for {name} differs from core/hookspecs.py"
    )


def test_no_section_documents_a_hook_that_does_not_exist():
    assert set(_documented()) - set(HOOKS) == set()


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_every_hookspec_has_a_docstring(name):
    doc = inspect.getdoc(HOOKS[name])
    assert doc and len(doc.split()) >= 8, f"{name} in core/hookspecs.py needs a docstring"


def test_the_signature_check_catches_a_changed_argument():
    # The comparison itself must be able to fail: a renamed argument is a different line.
    documented = _normalise("def agent(gw: Gateway) -> Agent | None")
    assert documented != _normalise(_signature_of("agent", HOOKS["agent"]))


@pytest.mark.parametrize("name", sorted(HOOKS))
def test_first_result_hooks_say_so_in_their_section(name):
    text = DOC.read_text(encoding="utf-8")
    start = text.index(f"#### {name}\n")
    following = text.find("\n#### ", start + 1)
    section = " ".join(text[start : following if following != -1 else len(text)].split())
    first_result = bool(HOOKS[name].eneca_bot_spec.get("firstresult"))
    assert ("First result wins" in section or "first result wins" in section) == first_result

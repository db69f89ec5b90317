"""docs/plugins.md documents every public member of the Gateway façade with the signature
the code has, and nothing else (like tests/kit/test_hooks_documented.py for the hooks)."""

import inspect
import re
from pathlib import Path

import pluggy
import pytest

from core import hookspecs
from core.config.settings import CoreSettings
from core.gateway import Gateway
from core.logs import Redactor

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "plugins.md"
SECTION = re.compile(r"^##### (\w+)\s*$", re.MULTILINE)
FIRST_CODE_LINE = re.compile(r"```python\n(?P<line>[^\n]*)\n")
#: Instance attributes of the façade, with their documented type.
ATTRIBUTES = {"settings": "CoreSettings", "version": "str"}


def _public_members() -> set[str]:
    pm = pluggy.PluginManager("eneca_bot")
    pm.add_hookspecs(hookspecs)
    gateway = Gateway(CoreSettings(data_dir=Path("unused")), pm, {}, Redactor(), "0")
    attributes = {name for name in vars(gateway) if not name.startswith("_")}
    assert attributes == set(ATTRIBUTES), "a new public attribute: document it"
    return attributes | {name for name in dir(Gateway) if not name.startswith("_")}


def _documented() -> dict[str, str]:
    text = DOC.read_text(encoding="utf-8").split("## The gateway\n", 1)[1]
    text = text.split("\n## ", 1)[0]
    headings = list(SECTION.finditer(text))
    sections = {}
    for heading, following in zip(headings, [*headings[1:], None], strict=True):
        body = text[heading.end() : following.start() if following else len(text)]
        code = FIRST_CODE_LINE.search(body)
        sections[heading.group(1)] = code.group("line").strip() if code else ""
    return sections


def _parameter(parameter: inspect.Parameter) -> str:
    text = parameter.name
    if parameter.kind is inspect.Parameter.VAR_POSITIONAL:
        text = f"*{text}"
    if parameter.annotation is not inspect.Parameter.empty:
        text += f": {parameter.annotation}"
    if parameter.default is not inspect.Parameter.empty:
        text += f" = {parameter.default!r}"
    return text


def _declaration(name: str) -> str:
    """What the code declares: ``def name(...) -> T`` for a method, ``name: T`` for a
    property or attribute (annotations are strings: ``from __future__ import annotations``)."""
    if name in ATTRIBUTES:
        return f"{name}: {ATTRIBUTES[name]}"
    member = inspect.getattr_static(Gateway, name)
    if isinstance(member, property):
        return f"{name}: {inspect.signature(member.fget).return_annotation}"
    signature = inspect.signature(member)
    params: list[str] = []
    starred = False
    for parameter in list(signature.parameters.values())[1:]:  # not self
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not starred:
            params.append("*")
        starred = starred or parameter.kind in (
            inspect.Parameter.KEYWORD_ONLY,
            inspect.Parameter.VAR_POSITIONAL,
        )
        params.append(_parameter(parameter))
    return f"def {name}({', '.join(params)}) -> {signature.return_annotation}"


MEMBERS = _public_members()


def test_the_facade_has_the_members_plugins_need():
    assert {"publish", "store", "agent", "settings_for", "health", "mask_secrets"} <= MEMBERS


@pytest.mark.parametrize("name", sorted(MEMBERS))
def test_every_public_member_has_a_section_with_its_declaration(name):
    documented = _documented()
    assert name in documented, f"docs/plugins.md has no '##### {name}' under 'The gateway'"
    assert documented[name] == _declaration(name), f"the docs of Gateway.{name} differ"


def test_no_section_documents_a_member_that_does_not_exist():
    assert set(_documented()) - MEMBERS == set()


@pytest.mark.parametrize("name", sorted(MEMBERS - set(ATTRIBUTES)))
def test_every_method_and_property_has_a_docstring(name):
    doc = inspect.getdoc(getattr(Gateway, name))
    assert doc and len(doc.split()) >= 6, f"Gateway.{name} needs a docstring"


def test_the_declaration_check_catches_a_changed_argument():
    assert _declaration("publish") != "def publish(msg: Message) -> ReplyHandle | None"


def test_the_facade_stays_small():
    lines = (ROOT / "core" / "gateway.py").read_text(encoding="utf-8").count("\n")
    assert lines <= 240, f"core/gateway.py has {lines} lines: move work behind it"

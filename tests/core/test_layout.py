"""The rooms of core/ keep their direction, read from the source with ``ast``.

- contract (values and interfaces): the standard library and pydantic only; no aiohttp,
  no other room of core, nothing from the top of core either;
- engine and durable: no aiohttp, nothing from core.web or the façade; durable nothing
  from the engine (the engine uses it);
- no import circle among core's modules (imports at module level; those under
  ``if TYPE_CHECKING:`` or inside a function are not run on import).
"""

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "core"
ROOMS = ("contract", "engine", "durable", "web", "config")


def _module_name(path: Path) -> str:
    parts = path.relative_to(CORE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in sorted(CORE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(module: str, *, run_on_import_only: bool) -> set[str]:
    """Dotted names ``module`` imports; with ``run_on_import_only`` only the imports that
    run when it is imported (not under TYPE_CHECKING, not inside a function)."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if run_on_import_only and (
                isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
                or (isinstance(child, ast.If) and _is_type_checking(child))
            ):
                if isinstance(child, ast.If):
                    for other in child.orelse:
                        visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                found.add(child.module)
                for alias in child.names:  # ``from core import hookspecs``: a module
                    if f"{child.module}.{alias.name}" in MODULES:
                        found.add(f"{child.module}.{alias.name}")
            visit(child)

    visit(tree)
    return found


def _room(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "core" and parts[1] in ROOMS else None


def _in(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def test_every_room_exists():
    assert {_room(module) for module in MODULES} >= set(ROOMS)


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _room(m) == "contract"))
def test_the_contract_imports_no_aiohttp_and_nothing_else_of_core(module):
    for name in _imports(module, run_on_import_only=False):
        assert not _in(name, "aiohttp"), f"{module} imports {name}"
        if _in(name, "core"):
            assert _room(name) == "contract", f"{module} imports {name}, outside the contract"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if _room(m) in ("engine", "durable")))
def test_engine_and_durable_import_no_aiohttp_and_nothing_from_the_web(module):
    for name in _imports(module, run_on_import_only=False):
        assert not _in(name, "aiohttp"), f"{module} imports {name}"
        assert not _in(name, "core.web"), f"{module} imports {name}"
        assert not _in(name, "core.gateway"), f"{module} imports the façade {name}"
        if _room(module) == "durable":  # the engine uses durable, never the other way
            assert not _in(name, "core.engine"), f"{module} imports {name}"


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle of ``graph``, or ``None``."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def walk(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (found := walk(target)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := walk(node)):
            return found
    return None


def test_core_has_no_import_circle():
    graph = {
        module: {name for name in _imports(module, run_on_import_only=True) if name in MODULES}
        - {module}
        for module in MODULES
    }
    assert _cycle(graph) is None, " -> ".join(_cycle(graph) or [])


def test_the_circle_check_can_fail():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_importing_core_loads_no_room():
    import subprocess
    import sys

    code = "import sys, core; print(sorted(m for m in sys.modules if m.startswith('core.')))"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"

"""The kit reaches a third party's project only when it opts in, and opting in twice is
harmless. Each case runs pytest in a fresh project folder, as a plugin author would."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

USES_THE_KIT = """
from core.testing import ScriptedAgent, ask, gateway_of


async def test_the_kit_starts_a_gateway(eneca_app):
    client = await eneca_app(agent=ScriptedAgent("pong"))
    assert (await ask(gateway_of(client), "ping")).text == "pong"
"""

DOES_NOT_OPT_IN = """
import sys


def test_the_kit_is_not_loaded(request):
    assert "core.testing" not in sys.modules
    assert "core.web.app" not in sys.modules  # nor the gateway it would start
    assert "eneca_app" not in request.fixturenames
"""

INI = """[pytest]
asyncio_mode = auto
asyncio_default_fixture_loop_scope = function
{extra}
"""


def _project(root: Path, test: str, ini_extra: str = "", conftest: str | None = None) -> Path:
    root.mkdir()
    (root / "pytest.ini").write_text(INI.format(extra=ini_extra))
    (root / "test_plugin.py").write_text(test)
    if conftest is not None:
        (root / "conftest.py").write_text(conftest)
    return root


def _pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_without_opting_in_a_project_gets_no_kit(tmp_path):
    project = _project(tmp_path / "plain", DOES_NOT_OPT_IN)
    result = _pytest(project, "-W", "error::pytest.PytestConfigWarning")
    assert result.returncode == 0, result.stdout + result.stderr
    uses = _project(tmp_path / "uses", USES_THE_KIT)
    result = _pytest(uses)
    assert result.returncode == 1
    assert "fixture 'eneca_app' not found" in result.stdout


@pytest.mark.parametrize(
    ("how", "ini_extra", "conftest", "args"),
    [
        ("ini key", "eneca_bot_kit = true", None, ()),
        # a conftest importing the kit must not beat its registration (assert rewriting)
        ("ini key, conftest imports", "eneca_bot_kit = true", "from core.testing import ask\n", ()),
        # (pytest_plugins alone is how this repository's own tests/conftest.py loads it)
        ("-p", "", None, ("-p", "core.testing")),
        (
            "all three at once",
            "eneca_bot_kit = true",
            'pytest_plugins = ["core.testing"]\n',
            ("-p", "core.testing"),
        ),
    ],
)
def test_a_project_that_opts_in_gets_the_kit(tmp_path, how, ini_extra, conftest, args):
    project = _project(tmp_path / "opted", USES_THE_KIT, ini_extra, conftest)
    result = _pytest(project, "-W", "error::pytest.PytestAssertRewriteWarning", *args)
    assert result.returncode == 0, f"{how}: {result.stdout}{result.stderr}"
    assert "1 passed" in result.stdout

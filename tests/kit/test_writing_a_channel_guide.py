"""docs/writing-a-channel.md works: the files it tells a reader to write make a plugin that
passes the tests it tells them to write.

Every code block of the guide whose first line is ``# file: PATH`` is written to a fresh
folder. The guide's package and entry point are renamed (``eneca_telegram`` is installed
in this environment already, as the full example) and the plugin is made discoverable
with a ``.dist-info`` folder, as ``pip install`` would; then pytest runs the guide's tests
there, loading the kit through the ``eneca_bot_kit`` key of the guide's pyproject.toml.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "writing-a-channel.md"
BLOCK = re.compile(r"```(?:python|toml)\n# file: (?P<path>\S+)\n(?P<body>.*?)```", re.DOTALL)
MODULE, RENAMED = "eneca_telegram", "guide_telegram"


def _files() -> dict[str, str]:
    return {m["path"]: m["body"] for m in BLOCK.finditer(GUIDE.read_text(encoding="utf-8"))}


def test_the_guide_names_its_files():
    files = _files()
    assert "pyproject.toml" in files
    assert f"{MODULE}/__init__.py" in files
    assert any(path.startswith("tests/") for path in files)


def test_following_the_guide_gives_a_plugin_that_passes_its_tests(tmp_path):
    project = tmp_path / "eneca-telegram"
    for path, body in _files().items():
        target = project / path.replace(MODULE, RENAMED)
        target.parent.mkdir(parents=True, exist_ok=True)
        body = body.replace(MODULE, RENAMED)
        body = body.replace('plugins=["telegram"]', f'plugins=["{RENAMED}"]')
        target.write_text(body)
    entry_point = re.search(r'^telegram = "(?P<target>[^"]+)"', _files()["pyproject.toml"], re.M)
    assert entry_point is not None, "the guide's pyproject.toml declares no entry point"
    info = project / f"{RENAMED}-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {RENAMED}\nVersion: 0.1.0\n")
    target = entry_point["target"].replace(MODULE, RENAMED)
    (info / "entry_points.txt").write_text(f"[eneca_bot.plugins]\n{RENAMED} = {target}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TELEGRAM_"))}
    env["PYTHONPATH"] = str(project)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"\b[4-9] passed\b", result.stdout), result.stdout

#!/usr/bin/env python3
"""Run eneca-bot or its tests from a fresh checkout with nothing but Python 3.11+.

    python3 dev.py serve   # create .venv if needed, install, start the server
    python3 dev.py test    # create .venv if needed, install with dev tools, lint + tests

The virtualenv is reinstalled only when pyproject.toml changes. Extra arguments go to
``eneca-bot serve`` or ``pytest``.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
EXAMPLE_PLUGINS = [ROOT / "examples" / "plugins" / "eneca-telegram"]


def _stamp(extra: str) -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes())
    for plugin in EXAMPLE_PLUGINS:
        if (plugin / "pyproject.toml").exists():
            digest.update((plugin / "pyproject.toml").read_bytes())
    digest.update(extra.encode())
    return digest.hexdigest()


def _installed(extra: str) -> bool:
    stamp_file = VENV / f".installed-{extra or 'base'}"
    return stamp_file.exists() and stamp_file.read_text() == _stamp(extra)


def ensure_venv(extra: str) -> None:
    """Create ``.venv`` and install the project (with ``extra``) when anything changed."""
    stamp_file = VENV / f".installed-{extra or 'base'}"
    stamp = _stamp(extra)
    # The dev install is the base one plus tools: serving needs nothing more.
    if _installed(extra) or (not extra and _installed("dev")):
        return
    if not (BIN / "python").exists():
        print("dev.py: creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    target = f".[{extra}]" if extra else "."
    print(f"dev.py: installing eneca-bot{f' [{extra}]' if extra else ''} into .venv", flush=True)
    subprocess.run([*pip, "-e", target], cwd=ROOT, check=True)
    if extra == "dev":
        for plugin in EXAMPLE_PLUGINS:
            if (plugin / "pyproject.toml").exists():
                subprocess.run([*pip, "-e", str(plugin)], cwd=ROOT, check=True)
    stamp_file.write_text(stamp)


def serve(args: list[str]) -> int:
    """Become the server (exec): the PID a supervisor started is the server's, so its
    signals (SIGTERM, Ctrl-C) reach the server and stop it, with nothing left behind."""
    ensure_venv("")
    os.chdir(ROOT)
    command = [str(BIN / "eneca-bot"), "serve", *args]
    sys.stdout.flush()
    sys.stderr.flush()
    if os.name == "nt":  # no exec that keeps the PID on Windows
        return subprocess.call(command)
    os.execv(command[0], command)
    return 0  # not reached


def test(args: list[str]) -> int:
    ensure_venv("dev")
    lint = subprocess.call([str(BIN / "ruff"), "check", "."], cwd=ROOT)
    if lint != 0:
        print("dev.py: ruff found problems (above)", file=sys.stderr)
        return lint
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *args], cwd=ROOT)


def main() -> int:
    if sys.version_info < (3, 11):  # noqa: UP036 - dev.py runs on whatever python3 is there
        print("dev.py: eneca-bot needs Python 3.11 or newer", file=sys.stderr)
        return 2
    command, *rest = sys.argv[1:] or ["serve"]
    commands = {"serve": serve, "test": test}
    if command not in commands:
        print("usage: python3 dev.py serve|test [args...]", file=sys.stderr)
        return 2
    try:
        return commands[command](rest)
    except subprocess.CalledProcessError as exc:
        print(f"dev.py: {' '.join(map(str, exc.cmd))} failed ({exc.returncode})", file=sys.stderr)
        return exc.returncode or 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())

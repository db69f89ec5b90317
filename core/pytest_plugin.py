"""The ``pytest11`` entry point of eneca-bot: loads the test kit only when a project asks.

pytest loads every ``pytest11`` entry point of every installed distribution in every test
run, so whatever this module registers reaches every project that merely installs
eneca-bot. It therefore registers one ini key and nothing else. A project opts in to the
kit (:mod:`core.testing`) in any one of three ways, all of which register the same module
under the same plugin name, so using two of them at once is harmless:

- ``eneca_bot_kit = true`` in its pytest configuration (read here);
- ``pytest_plugins = ["core.testing"]`` in its rootdir ``conftest.py``;
- ``pytest -p core.testing`` on the command line.

Loading it imports only pytest and the light ``core`` package (no aiohttp, no gateway),
so projects that do not opt in pay next to nothing for it.
"""

from __future__ import annotations

import pytest

#: The module that holds the kit's fixtures and helpers.
KIT = "core.testing"
#: The ini key that opts a project in.
INI_KEY = "eneca_bot_kit"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        INI_KEY,
        type="bool",
        default=False,
        help="load the eneca-bot plugin test kit (core.testing: eneca_app, ScriptedAgent...)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(
    early_config: pytest.Config, parser: pytest.Parser, args: list[str]
) -> None:
    # Before the conftest files are imported: they may import core.testing themselves, and
    # a module imported before pytest registers it misses assertion rewriting.
    if early_config.getini(INI_KEY):
        # Registered under its module name, exactly as ``pytest_plugins``/``-p`` would,
        # so a project that opts in twice still has one kit.
        early_config.pluginmanager.import_plugin(KIT)

"""Run the real gateway with the TalkMe plugin in its own process (restart test, benchmark).

    python tests/support/talkme_server.py '{"port": 8123, "data_dir": "...", ...}'

Keys: ``port``, ``data_dir``, ``log_dir``, ``config_file`` (an existing, maybe empty TOML
file), ``agent_delay`` (seconds the ScriptedAgent takes), ``talkme`` and ``core`` (settings
overrides). The agent answers ``re: <text>``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from aiohttp import web

from core.testing import ScriptedAgent, provide
from core.web.app import create_app


def build_app(config: dict[str, Any]) -> web.Application:
    agent = ScriptedAgent(
        lambda request: f"re: {request.message.text}", delay=float(config.get("agent_delay", 0))
    )
    core = {
        "plugins": ["talkme"],
        "data_dir": config["data_dir"],
        "log_dir": config["log_dir"],
        **config.get("core", {}),
    }
    return create_app(
        config_file=config["config_file"],
        env_file=None,
        overrides={"core": core, "talkme": config.get("talkme", {})},
        plugins={"test_provider": provide(agent=agent)},
    )


def main() -> None:
    config = json.loads(sys.argv[1])
    web.run_app(build_app(config), host="127.0.0.1", port=int(config["port"]), print=None)


if __name__ == "__main__":
    main()

"""Run by test_durability: start the real gateway with memory_sqlite on DATA_DIR, answer
messages as fast as it can and print ``ack <conversation> <n>`` once each reply (and so
both turns) is stored, until killed.

Usage: python append_until_killed.py DATA_DIR CONVERSATIONS
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from aiohttp import web

from core.testing import ScriptedAgent, ask, gateway_of, provide
from core.web.app import create_app


async def main(data_dir: Path, conversations: int) -> None:
    config = data_dir.parent / "empty.toml"
    config.touch()
    app = create_app(
        config_file=config,
        env_file=None,
        overrides={
            "core": {
                "plugins": ["memory_sqlite"],
                "data_dir": str(data_dir),
                "log_dir": str(data_dir.parent / "logs"),
                "log_level": "WARNING",
            }
        },
        plugins={"test_provider": provide(agent=ScriptedAgent())},
    )
    runner = web.AppRunner(app)
    await runner.setup()  # runs every plugin's lifespan and starts the gateway
    gateway = gateway_of(app)
    n = 0
    while True:
        cid = f"c{n % conversations}"
        reply = await ask(gateway, f"turn {n} ✓", cid)
        assert reply.success, reply.error
        sys.stdout.write(f"ack {cid} {n}\n")
        sys.stdout.flush()
        n += 1


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), int(sys.argv[2])))

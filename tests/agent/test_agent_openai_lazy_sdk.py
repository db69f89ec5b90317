"""The openai SDK (about 15 MB and a third of a second to import) is loaded by the first
model request, not at start-up; that request and every later one are answered. With the
knowledge base off, its index, numpy and morphology are never loaded (numpy alone is about
15 MB of resident memory)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, json, sys, tempfile
from pathlib import Path
from aiohttp.test_utils import TestClient, TestServer
from core.web.app import create_app
from tests.support.openai_server import FakeOpenAI

async def main():
    seen = {}
    async with FakeOpenAI() as fake:
        place = Path(tempfile.mkdtemp())
        (place / "settings.toml").touch()
        app = create_app(config_file=place / "settings.toml", env_file=None, overrides={
            "core": {"plugins": ["http_api", "memory_sqlite", "agent_openai"],
                     "data_dir": str(place / "data"), "log_dir": str(place / "logs")},
            "agent_openai": {"openai_base_url": fake.base_url, "openai_api_key": "sk-lazy-test",
                             "knowledge_mode": "off", "openai_max_retries": 0},
        })
        async with TestClient(TestServer(app)) as client:
            health = await (await client.get("/health")).json()
            seen["health_base_url"] = health["plugins"]["agent_openai"]["base_url"]
            seen["loaded_at_start"] = "openai" in sys.modules
            replies = await asyncio.gather(*(
                client.post("/api/chat", json={"message": f"hi {n}", "thread_id": f"t{n}"})
                for n in range(3)
            ))
            seen["replies"] = [(await r.json())["success"] for r in replies]
            seen["loaded_after"] = "openai" in sys.modules
            heavy = ("numpy", "pymorphy3", "snowballstemmer")
            seen["knowledge_modules"] = sorted(
                m for m in sys.modules
                if m.split(".")[0] in heavy or m == "plugins.agent_openai.knowledge"
            )
            seen["upstream_requests"] = len(fake.requests)
    print(json.dumps(seen))

asyncio.run(main())
"""


def test_the_sdk_is_imported_by_the_first_model_request_not_at_start_up():
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr[-3000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["loaded_at_start"] is False
    assert seen["health_base_url"].startswith("http://127.0.0.1:")
    # Three requests racing on the first load: one client, three answers from the model.
    assert seen["replies"] == [True, True, True]
    assert seen["upstream_requests"] == 3
    assert seen["loaded_after"] is True
    # KNOWLEDGE_MODE=off: the knowledge base's index, numpy and morphology stay unloaded.
    assert seen["knowledge_modules"] == []

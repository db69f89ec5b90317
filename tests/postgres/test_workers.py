"""``eneca-bot serve --workers N``."""

from core.cli import main as cli_main


def test_workers_above_one_on_embedded_sqlite_are_refused_with_one_line(
    monkeypatch, tmp_path, capsys
):
    monkeypatch.chdir(tmp_path)  # no .env or config/settings.toml of the checkout
    monkeypatch.setenv("PLUGINS", "http_api,talkme,memory_sqlite,agent_openai")
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LOG_DIR", str(tmp_path / "logs"))
    assert cli_main(["serve", "--workers", "2"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "--workers 2 needs" in err and "postgres plugin" in err
    assert not (tmp_path / "data").exists(), "nothing was started"


async def test_two_workers_share_one_port_and_one_set_of_lanes(
    tmp_path, postgres_dsn, postgres_schema
):
    import asyncio
    import os
    import signal
    import sys

    import aiohttp

    from tests.support.clients import chat, echo, get_json
    from tests.support.openai_server import FakeOpenAI
    from tests.support.serve_process import KEPT_ENV, base_env, free_port

    llm = FakeOpenAI(default=echo())
    await llm.start()
    port = free_port()
    env = {
        **{key: value for key, value in os.environ.items() if key in KEPT_ENV},
        **base_env(
            tmp_path,
            PLUGINS="http_api,postgres,agent_openai",
            POSTGRES_DSN=postgres_dsn,
            POSTGRES_SCHEMA=postgres_schema,
            OPENAI_BASE_URL=llm.base_url,
            REPLY_TIMEOUT_S="30",
            OPENAI_TIMEOUT_S="20",
        ),
        "PORT": str(port),
        "HOST": "127.0.0.1",
    }
    supervisor = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "core.cli", "serve", "--workers", "2",
        cwd=tmp_path, env=env, stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            live = 0
            for _ in range(400):  # until both workers beat (each is a node)
                try:
                    status, health = await get_json(session, f"{url}/health")
                    live = health["plugins"]["postgres"]["live_nodes"] if status == 200 else 0
                except (aiohttp.ClientError, KeyError):
                    live = 0
                if live == 2:
                    break
                await asyncio.sleep(0.1)
            assert live == 2
            outcomes = await asyncio.gather(
                *(chat(session, url, f"w{n % 4}", f"q{n}", timeout=60) for n in range(12))
            )
            assert all(outcome.ok for outcome in outcomes), outcomes
    finally:
        supervisor.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(supervisor.wait(), 30) == 0
        await llm.close()

"""create_app has no process-wide side effects: two apps in one process each write their
own log file and count their own requests; the collector and the process's loguru
handlers are left as they were (``eneca-bot serve`` tunes those)."""

import gc

from loguru import logger

from core.testing import ScriptedAgent

ADMIN = "admin-key-isolation-0001"


async def _metrics(client):
    response = await client.get("/metrics", headers={"X-API-Key": ADMIN})
    assert response.status == 200
    return await response.text()


async def test_two_apps_log_and_measure_independently(eneca_app, tmp_path):
    thresholds, frozen = gc.get_threshold(), gc.get_freeze_count()
    seen: list[str] = []
    sink = logger.add(lambda message: seen.append(str(message)), level="INFO")
    try:
        apps = {}
        for name in ("a", "b"):
            apps[name] = await eneca_app(
                agent=ScriptedAgent(),
                settings={
                    "core": {
                        "admin_keys": [ADMIN],
                        "log_dir": str(tmp_path / f"logs-{name}"),
                        "data_dir": str(tmp_path / f"data-{name}"),
                    }
                },
            )
        assert (await apps["a"].get("/openapi.json")).status == 200
        assert (await apps["b"].get("/health")).status == 200
        metrics_a, metrics_b = await _metrics(apps["a"]), await _metrics(apps["b"])
    finally:
        logger.remove(sink)

    log_a = (tmp_path / "logs-a" / "app.log").read_text()
    log_b = (tmp_path / "logs-b" / "app.log").read_text()
    assert "GET /openapi.json 200" in log_a and "GET /openapi.json" not in log_b
    assert "GET /health 200" in log_b and "GET /health" not in log_a
    assert 'route="/openapi.json"' in metrics_a and 'route="/openapi.json"' not in metrics_b
    assert 'route="/health"' in metrics_b and 'route="/health"' not in metrics_a
    # The process's own handler still gets every record: nothing was removed.
    assert any("GET /openapi.json 200" in line for line in seen)
    assert any("GET /health 200" in line for line in seen)
    assert (gc.get_threshold(), gc.get_freeze_count()) == (thresholds, frozen)

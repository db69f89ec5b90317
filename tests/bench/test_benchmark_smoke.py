"""The benchmark's machinery at a tiny size: every server starts, the load generator
drives it, the upstream saw each conversation's history, figures come out. No timing is
asserted (the figures go in reports, not in tests)."""

from __future__ import annotations

from benchmarks.run import KINDS, run


def test_overhead_scenario_produces_figures_and_checks_history(tmp_path):
    report = run(["overhead"], rounds=1, users=2, turns=3, workdir=tmp_path)

    scenario = report["scenarios"]["overhead"]
    for kind in KINDS:
        figures = scenario["rounds"][0][kind]["chat"]
        assert figures["requests"] == 6
        assert figures["errors"] == 0
        assert figures["history_ok"], figures.get("history_problems")
        assert figures["cpu_ms_per_req"] is not None
        assert figures["p50_ms"] is not None
    summary = scenario["summary"]["chat"]
    assert summary["history_ok"]
    assert summary["cpu_ms_per_req"]["ours/bare"] is not None
    assert {t["target"] for t in scenario["targets"]} >= {
        "overhead CPU/request vs bare passthrough",
        "overhead CPU/request vs passthrough+openai",
    }


def test_stream_endpoint_reports_first_chunk(tmp_path):
    report = run(["realistic"], rounds=1, users=2, turns=2, workdir=tmp_path, quick=True)

    stream = report["scenarios"]["realistic"]["rounds"][0]["ours"]["stream"]
    assert stream["errors"] == 0
    assert stream["history_ok"], stream.get("history_problems")
    assert stream["first_chunk_p50_ms"] is not None


def test_the_long_conversation_ratio_keeps_sub_millisecond_differences():
    from benchmarks.run import long_figures

    # (user, turn, latency s, cpu ns): 2.4 ms early, 2.6 ms late - not "2 ms vs 3 ms".
    rows = [[0, turn, 0.0024 if turn <= 10 else 0.0026, 1_000_000] for turn in range(1, 201)]
    figures = long_figures(rows, 200)
    assert figures["last10_vs_first10_latency"] == round(0.0026 / 0.0024, 3)
    assert figures["first10_latency_ms"] == 2.4


# -- PostgreSQL (issue 15): --backend postgres/both and the workers scenario ----------------


def _schema_exists(dsn: str, schema: str) -> bool:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,))
        return found.fetchone() is not None


def test_both_backends_run_side_by_side_and_the_schema_is_dropped(tmp_path, postgres_dsn):
    report = run(
        ["overhead"],
        rounds=1,
        users=2,
        turns=3,
        workdir=tmp_path,
        backend="both",
        postgres_dsn=postgres_dsn,
    )

    scenario = report["scenarios"]["overhead"]
    one_round = scenario["rounds"][0]
    for kind in ("ours", "postgres"):
        figures = one_round[kind]["chat"]
        assert figures["requests"] == 6
        assert figures["errors"] == 0
        assert figures["history_ok"], figures.get("history_problems")
        assert figures["cpu_ms_per_req"] is not None
    # The database's own processes are counted for PostgreSQL (SQLite works in-process).
    assert one_round["postgres"]["chat"]["db_cpu_ms_per_req"] is not None
    assert "db_cpu_ms_per_req" not in one_round["ours"]["chat"]
    assert one_round["postgres"]["plugins"] == "http_api,postgres,agent_openai"
    assert one_round["ours"]["plugins"] == "http_api,memory_sqlite,agent_openai"
    assert not _schema_exists(postgres_dsn, one_round["postgres"]["postgres_schema"])
    cpu = scenario["summary"]["chat"]["cpu_ms_per_req"]
    assert cpu["postgres/ours"] is not None
    ratio = next(
        t for t in report["targets"] if t["target"] == "overhead CPU/request PostgreSQL vs SQLite"
    )
    assert ratio["value"] == cpu["postgres/ours"] and ratio["limit"] == 1.5
    figures = {row["figure"]: row for row in report["side_by_side"]}
    assert figures["overhead CPU/request, PostgreSQL / SQLite"]["postgres"] == cpu["postgres/ours"]


def test_talkme_on_postgres_delivers_every_message(tmp_path, postgres_dsn):
    report = run(
        ["talkme"],
        talkme_seconds=1.0,
        talkme_rate=10.0,
        workdir=tmp_path,
        backend="postgres",
        postgres_dsn=postgres_dsn,
    )

    scenario = report["scenarios"]["talkme_postgres"]
    summary = scenario["summary"]
    assert scenario["config"]["plugins"] == "http_api,talkme,postgres,agent_openai"
    assert summary["acked_200"] == summary["webhooks"] == 10
    assert summary["delivered"] == 10
    assert summary["ack_p99_ms"] is not None
    assert not _schema_exists(postgres_dsn, scenario["config"]["postgres_schema"])


def test_workers_scenario_compares_two_workers_with_one(tmp_path, postgres_dsn):
    report = run(
        ["workers"],
        rounds=1,
        users=2,
        turns=2,
        workdir=tmp_path,
        backend="postgres",
        postgres_dsn=postgres_dsn,
    )

    scenario = report["scenarios"]["workers"]
    for kind in ("workers1", "workers2"):
        figures = scenario["rounds"][0][kind]["chat"]
        assert figures["errors"] == 0 and figures["requests"] == 4
        assert figures["history_ok"], figures.get("history_problems")
    assert scenario["summary"]["req_s"]["workers2/workers1"] is not None
    (speedup,) = scenario["targets"]
    assert speedup["compare"] == ">=" and speedup["limit"] == 1.5
    assert scenario["load_average"]["before"] and scenario["load_average"]["after"]

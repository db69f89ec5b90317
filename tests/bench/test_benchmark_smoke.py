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

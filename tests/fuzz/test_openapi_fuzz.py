"""Schemathesis fuzzes every route of ``/openapi.json`` against the real gateway.

The app runs in-process on a loopback port (the kit's ``eneca_app``) with the HTTP API
(debug endpoint on), TalkMe in test mode, a scripted agent and an API key. Schemathesis is
synchronous (``requests``), so it runs in a worker thread while the event loop serves.
Every operation gets schema-valid (positive) and schema-breaking (negative) examples;
every response must be a non-5xx that matches the document: a declared status, the
declared content type, a body matching the declared schema.

``FUZZ_EXAMPLES`` (default 25 per operation and mode) makes a deeper run locally.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation import GenerationMode

from core.testing import ScriptedAgent

API_KEY = "fuzz-key-0123456789"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))


@dataclass
class FuzzReport:
    operations: int = 0
    cases: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    seconds: float = 0.0


def fuzz(document: dict[str, Any], base_url: str, examples: int) -> FuzzReport:
    """Run every operation of ``document`` against ``base_url``; collect, don't stop."""
    report = FuzzReport()
    started = time.perf_counter()
    schema = schemathesis.openapi.from_dict(document)
    headers = {"X-API-Key": API_KEY}
    for result in schema.get_all_operations():
        operation = result.ok()
        report.operations += 1
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                derandomize=True,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case: Any) -> None:
                positive = mode is GenerationMode.POSITIVE  # noqa: B023 - run() runs in this turn
                if positive and "Idempotency-Key" in (case.headers or {}):
                    # A key is state: reused with another body it is 422 by design, which
                    # schemathesis cannot know. Each valid case gets its own key.
                    case.headers["Idempotency-Key"] = uuid.uuid4().hex
                response = case.call_and_validate(base_url=base_url, headers=headers, timeout=10)
                report.cases += 1
                report.statuses[response.status_code] = (
                    report.statuses.get(response.status_code, 0) + 1
                )

            try:
                run()
            except Unsatisfiable:  # nothing to break: no parameters, no body
                continue
            # One operation's failure must not hide the others' (schemathesis raises an
            # ExceptionGroup of every distinct failure it found).
            except (Exception, BaseExceptionGroup) as exc:
                report.failures.append(f"{operation.label} [{mode.value}]: {exc}")
    report.seconds = time.perf_counter() - started
    return report


async def test_every_route_answers_fuzzed_requests_as_documented(eneca_app):
    client = await eneca_app(
        ["http_api", "talkme"],
        agent=ScriptedAgent(),
        settings={
            "core": {"admin_keys": API_KEY},
            "http_api": {"debug_endpoint": True},
            "talkme": {"test_mode": True},
        },
    )
    document = await (await client.get("/openapi.json")).json()
    base_url = str(client.make_url("")).rstrip("/")

    report = await asyncio.to_thread(fuzz, document, base_url, EXAMPLES)

    print(
        f"fuzzed {report.operations} operations, {report.cases} cases in "
        f"{report.seconds:.1f}s; statuses {dict(sorted(report.statuses.items()))}"
    )
    assert report.operations >= 12
    assert not report.failures, "\n\n".join(report.failures)
    assert all(status < 500 for status in report.statuses)
    # The server still answers after the run.
    assert (await client.get("/health")).status == 200

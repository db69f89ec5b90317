"""core.tracing in one process: off costs nothing, on exports to an OTLP/HTTP receiver.

The end-to-end tests (a real ``eneca-bot serve``) are in tests/tracing/.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from loguru import logger

from core import tracing
from core.contract.errors import ConfigError
from core.logs import Redactor, setup_logging
from core.tracing import genai
from core.tracing.complaints import Complaints
from core.tracing.context import TraceParent, parse_traceparent
from tests.support.otlp_receiver import OtlpReceiver, otlp_receiver  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
CLIENT_PARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


@pytest.fixture(autouse=True)
def tracing_off_after() -> Iterator[None]:
    yield
    tracing.shutdown()


@pytest.fixture
def otel_env(monkeypatch: pytest.MonkeyPatch, otlp_receiver: OtlpReceiver) -> OtlpReceiver:  # noqa: F811
    """The standard variables pointing at the test receiver; exported at once on flush."""
    for name in ("OTEL_SERVICE_NAME", "OTEL_RESOURCE_ATTRIBUTES", "OTEL_TRACES_SAMPLER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", otlp_receiver.endpoint)
    return otlp_receiver


async def flush() -> None:
    """Export now; from a thread, since the receiver runs on this test's event loop."""
    assert await asyncio.to_thread(tracing.active().force_flush, 10)


# -- the trace context stored on rows and read from headers ----------------------------------


def test_traceparent_round_trip() -> None:
    parsed = parse_traceparent(CLIENT_PARENT)
    assert parsed == TraceParent(
        0x0AF7651916CD43DD8448EB211C80319C, 0xB7AD6B7169203331, sampled=True
    )
    assert parsed.header() == CLIENT_PARENT
    assert parse_traceparent(CLIENT_PARENT[:-2] + "00").sampled is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # forbidden version
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra",  # v00 has 4 fields
        "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",  # short trace id
        "0" * 600,
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


def test_a_future_version_with_more_fields_is_read() -> None:
    parsed = parse_traceparent("cc-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-what")
    assert parsed is not None and parsed.span_hex == "b7ad6b7169203331"


# -- off ----------------------------------------------------------------------------------


def test_off_by_default_every_call_is_a_no_op(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in tracing.ENDPOINT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    assert tracing.configure(version="1") is tracing.OFF
    with tracing.span("anything", attributes={"a": 1}) as span:
        span.set_attribute("b", 2)
        span.add_event("e")
        assert span.recording is False
        assert span.traceparent is None
        assert tracing.traceparent() is None
    with genai.model_call("gpt") as call:
        call.first_chunk()
        call.finish(input_tokens=1, output_tokens=2)
    assert tracing.active().content("secret text") is None


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_SDK_DISABLED": "true"},
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:9", "OTEL_TRACES_EXPORTER": "none"},
    ],
)
def test_switched_off_no_opentelemetry_module_is_imported(env: dict[str, str]) -> None:
    """In a fresh interpreter: configure, spans, a GenAI span, the HTTP hook, log lines."""
    script = textwrap.dedent(
        """
        import json, sys
        from aiohttp import web
        from loguru import logger
        from core import tracing
        from core.logs import Redactor
        from core.tracing import genai
        from core.web import tracing as tracing_web
        tracing.configure(version="1", mask=Redactor())
        app = web.Application()
        tracing_web.install(app)
        with tracing.span("x"), genai.model_call("m") as call:
            call.finish(input_tokens=1)
            logger.info("a line")
        print(json.dumps({
            "modules": sorted(m for m in sys.modules if m.startswith("opentelemetry")),
            "middlewares": len(app.middlewares),
        }))
        """
    )
    clean = {k: v for k, v in __import__("os").environ.items() if not k.startswith("OTEL_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report == {"modules": [], "middlewares": 0}


# -- on -----------------------------------------------------------------------------------


async def test_spans_reach_the_receiver_with_parent_links(otel_env: OtlpReceiver) -> None:
    tracing.configure(version="9.9")
    assert tracing.active().enabled
    with tracing.span("outer", kind="server", attributes={"eneca.channel": "api"}) as outer:
        with tracing.span("inner") as inner:
            inner.set_attribute("eneca.count", 3)
            current = tracing.traceparent()
        assert outer.traceparent is not None
    await flush()
    spans = await otel_env.wait_for(lambda spans: len(spans) >= 2)
    by_name = {span.name: span for span in spans}
    assert by_name["inner"].parent_span_id == by_name["outer"].span_id
    assert by_name["inner"].trace_id == by_name["outer"].trace_id
    assert by_name["outer"].parent_span_id == ""
    assert by_name["outer"].kind == "server"
    assert by_name["outer"].attributes == {"eneca.channel": "api"}
    assert by_name["inner"].attributes == {"eneca.count": 3}
    assert current == f"00-{by_name['inner'].trace_id}-{by_name['inner'].span_id}-01"
    assert by_name["outer"].resource["service.name"] == "eneca-bot"
    assert by_name["outer"].resource["service.version"] == "9.9"
    assert otel_env.content_types == ["application/x-protobuf"]


async def test_service_name_and_resource_attributes_from_the_environment(
    otel_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_SERVICE_NAME", "support-bot")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=staging,team=cx")
    tracing.configure(version="1")
    with tracing.span("one"):
        pass
    await flush()
    span = await otel_env.wait_for_span("one")
    assert span.resource["service.name"] == "support-bot"
    assert span.resource["deployment.environment"] == "staging"
    assert span.resource["team"] == "cx"


async def test_a_stored_traceparent_continues_its_trace(otel_env: OtlpReceiver) -> None:
    tracing.configure(version="1")
    with tracing.span("later", parent=CLIENT_PARENT):
        pass
    with tracing.span("fresh", parent="not a traceparent"):
        pass
    await flush()
    await otel_env.wait_for(lambda spans: len(spans) >= 2)
    later, fresh = otel_env.named("later")[0], otel_env.named("fresh")[0]
    assert (later.trace_id, later.parent_span_id) == (
        "0af7651916cd43dd8448eb211c80319c",
        "b7ad6b7169203331",
    )
    assert fresh.trace_id != later.trace_id and fresh.parent_span_id == ""


async def test_the_sampler_variable_is_honoured(
    otel_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    tracing.configure(version="1")
    with tracing.span("dropped") as span:
        assert span.recording is False
        header = tracing.traceparent()  # still propagated, marked not sampled
    assert header is not None and header.endswith("-00")
    with tracing.span("after"):
        pass
    await flush()
    assert otel_env.spans == []


async def test_an_exception_marks_the_span_failed_with_secrets_masked(
    otel_env: OtlpReceiver,
) -> None:
    redactor = Redactor()
    redactor.add("sk-very-secret-key")
    tracing.configure(version="1", mask=redactor)
    with pytest.raises(RuntimeError), tracing.span("failing"):
        raise RuntimeError("upstream said sk-very-secret-key is wrong")
    await flush()
    span = await otel_env.wait_for_span("failing")
    assert span.status_code == 2
    (event,) = span.events
    assert event.name == "exception"
    assert event.attributes["exception.type"] == "builtins.RuntimeError"
    assert "sk-very-secret-key" not in span.text()
    assert "***" in event.attributes["exception.message"]


async def test_model_call_span_follows_the_genai_conventions(otel_env: OtlpReceiver) -> None:
    tracing.configure(version="1")
    with genai.model_call(
        "gpt-4o-mini", server_address="127.0.0.1", server_port=8080, stream=True
    ) as call:
        call.prompt([{"role": "user", "content": "my phone is 555-0100"}])
        call.first_chunk()
        call.first_chunk()
        call.finish(
            response_model="gpt-4o-mini-2024",
            finish_reasons=["stop"],
            input_tokens=12,
            output_tokens=7,
        )
        call.completion("call me")
    with genai.tool_call("search_knowledge_base", "call_1") as tool:
        tool.set_attribute("eneca.knowledge.passages", 2)
    await flush()
    spans = await otel_env.wait_for(lambda spans: len(spans) >= 2)
    model = next(span for span in spans if span.name == "chat gpt-4o-mini")
    assert model.kind == "client"
    attributes = model.attributes
    assert attributes["gen_ai.operation.name"] == "chat"
    assert attributes["gen_ai.provider.name"] == "openai"
    assert attributes["gen_ai.request.model"] == "gpt-4o-mini"
    assert attributes["gen_ai.response.model"] == "gpt-4o-mini-2024"
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["gen_ai.usage.input_tokens"] == 12
    assert attributes["gen_ai.usage.output_tokens"] == 7
    assert attributes["gen_ai.response.time_to_first_chunk"] >= 0
    assert (attributes["server.address"], attributes["server.port"]) == ("127.0.0.1", 8080)
    # Content is not recorded by default.
    assert "555-0100" not in model.text() and "call me" not in model.text()
    assert "gen_ai.input.messages" not in attributes
    tool_span = next(span for span in spans if span.name == "execute_tool search_knowledge_base")
    assert tool_span.attributes["gen_ai.tool.call.id"] == "call_1"
    assert tool_span.attributes["eneca.knowledge.passages"] == 2


async def test_content_is_recorded_only_when_asked_and_masked(
    otel_env: OtlpReceiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OTEL_RECORD_CONTENT", "true")
    redactor = Redactor()
    redactor.add("tok-0123456789")
    tracing.configure(version="1", mask=redactor)
    with genai.model_call("m") as call:
        call.prompt([{"role": "user", "content": "hello, my token is tok-0123456789"}])
        call.completion("hi there")
    await flush()
    span = await otel_env.wait_for_span("chat m")
    sent = json.loads(span.attributes["gen_ai.input.messages"])
    assert sent == [
        {"role": "user", "parts": [{"type": "text", "content": "hello, my token is ***"}]}
    ]
    assert "hi there" in span.attributes["gen_ai.output.messages"]
    assert [event.name for event in span.events] == [
        "gen_ai.content.prompt",
        "gen_ai.content.completion",
    ]


def test_a_bad_record_content_value_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_RECORD_CONTENT", "maybe")
    with pytest.raises(ConfigError, match="OTEL_RECORD_CONTENT"):
        tracing.configure(version="1")


def test_exporter_header_values_are_masked_in_logs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "Authorization=Basic%20cGstbGYtMTIzNDU2Nzg=")
    redactor = Redactor()
    tracing.configure(version="1", mask=redactor, add_secret=redactor.add)
    assert redactor("header Basic cGstbGYtMTIzNDU2Nzg=") == "header ***"


# -- logs ---------------------------------------------------------------------------------


@pytest.fixture
def json_log(tmp_path: Path) -> AsyncIterator[Path]:
    setup_logging(tmp_path, "INFO", True, "10 MB", "1 day", Redactor())
    yield tmp_path / "app.log"
    logger.remove()


def _lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]  # flat JSON lines


async def test_log_lines_carry_the_trace_and_span_id(
    otel_env: OtlpReceiver, json_log: Path
) -> None:
    tracing.configure(version="1")
    with tracing.span("work"):
        logger.info("inside")
    logger.info("outside")
    await flush()
    span = await otel_env.wait_for_span("work")
    records = {record["message"]: record for record in _lines(json_log)}
    inside = records["inside"]
    assert (inside["trace_id"], inside["span_id"]) == (span.trace_id, span.span_id)
    assert "trace_id" not in records["outside"]


def test_log_lines_have_no_trace_ids_when_tracing_is_off(json_log: Path) -> None:
    with tracing.span("work"):
        logger.info("inside")
    assert "trace_id" not in _lines(json_log)[-1]


# -- a receiver that is down ---------------------------------------------------------------


def test_tracing_problems_are_logged_once_a_minute() -> None:
    now = [1000.0]
    complaints = Complaints(clock=lambda: now[0])
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(message.record["message"]))
    try:
        complaints("receiver down")
        for _ in range(50):
            now[0] += 1.0
            complaints("receiver down")
        now[0] += 10.0  # 60 s after the first
        complaints("receiver down")
    finally:
        logger.remove(sink)
    assert messages == [
        "tracing: receiver down",
        "tracing: receiver down (50 more tracing problem(s) in the last minute not logged)",
    ]


async def test_a_receiver_that_is_down_costs_one_warning(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.support.serve_process import free_port

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "1")
    messages: list[str] = []
    sink = logger.add(lambda message: messages.append(message.record["message"]), level="WARNING")
    try:
        tracing.configure(version="1")
        for number in range(3):
            with tracing.span(f"lost {number}"):
                pass
            tracing.active().force_flush(5)
    finally:
        logger.remove(sink)
    warnings = [m for m in messages if m.startswith("tracing:")]
    assert len(warnings) == 1, messages
    assert "could not export" in warnings[0]
    # The SDK's own logging goes to that warning, not to stderr.
    assert "Traceback" not in capfd.readouterr().err


# -- the OTLP encoding --------------------------------------------------------------------


def test_our_otlp_encoding_says_what_the_sdk_encoder_says() -> None:
    """core.tracing.otlp_proto writes the protobuf by hand (it is cheaper); a receiver
    must read exactly what the SDK's own encoder would have sent."""
    from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
        ExportTraceServiceRequest,
    )
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import Event, ReadableSpan
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope
    from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags

    from core.tracing.otlp_proto import encode_request

    resource = Resource({"service.name": "eneca-bot", "service.version": "1.2"})
    scope = InstrumentationScope("eneca-bot", "1.2")
    attributes = {
        "text": "héllo ✓",
        "long": "x" * 300,
        "yes": True,
        "no": False,
        "count": 7,
        "negative": -3,
        "big": 2**40,
        "score": 0.25,
        "reasons": ["stop", "length"],
        "numbers": [1, 2],
    }
    spans = [
        ReadableSpan(
            "root",
            SpanContext(2**127 + 5, 2**63 + 9, False, TraceFlags(1)),
            parent=SpanContext(2**127 + 5, 77, True, TraceFlags(1)),
            resource=resource,
            attributes=attributes,
            events=[Event("exception", {"exception.type": "E"}, timestamp=123)],
            kind=SpanKind.SERVER,
            status=Status(StatusCode.ERROR, "boom"),
            start_time=1_700_000_000_000_000_000,
            end_time=1_700_000_000_500_000_000,
            instrumentation_scope=scope,
        ),
        ReadableSpan(
            "child",
            SpanContext(2**127 + 5, 3, False, TraceFlags(1)),
            parent=SpanContext(2**127 + 5, 2**63 + 9, False, TraceFlags(1)),
            resource=resource,
            attributes={},
            kind=SpanKind.CONSUMER,
            status=Status(StatusCode.OK),
            start_time=5,
            end_time=6,
            instrumentation_scope=scope,
        ),
        ReadableSpan(
            "plain",
            SpanContext(9, 4, False, TraceFlags(1)),
            resource=resource,
            start_time=5,
            end_time=6,
            instrumentation_scope=scope,
        ),
    ]
    ours = ExportTraceServiceRequest()
    ours.ParseFromString(encode_request(spans))
    sdk = ExportTraceServiceRequest()
    sdk.ParseFromString(encode_spans(spans).SerializeToString())
    for request in (ours, sdk):  # an empty status and no status say the same (unset)
        for span in request.resource_spans[0].scope_spans[0].spans:
            if span.status.code == 0 and not span.status.message:
                span.ClearField("status")
    assert ours == sdk

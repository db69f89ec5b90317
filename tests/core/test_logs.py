"""Secrets never reach the log, also inside exception messages and their causes."""

import json

from loguru import logger

from core.logs import Redactor, setup_logging

SECRET = "bot-token-0123456789abcdef"


def _log_failure(redactor, tmp_path, json_lines):
    setup_logging(tmp_path, "INFO", json_lines, "10 MB", "1 day", redactor)
    try:
        try:
            raise ConnectionError(f"cannot reach https://api.example/bot{SECRET}/send")
        except ConnectionError as inner:
            raise RuntimeError(f"delivery failed for {SECRET}") from inner
    except RuntimeError as exc:
        logger.opt(exception=exc).error("deliver_reply raised: {}", exc)
    logger.remove()
    return (tmp_path / "app.log").read_text()


def test_tracebacks_are_masked_message_and_cause(tmp_path):
    redactor = Redactor()
    redactor.add(SECRET)
    text = _log_failure(redactor, tmp_path, json_lines=False)
    assert SECRET not in text
    assert "RuntimeError: delivery failed for ***" in text
    assert "ConnectionError: cannot reach https://api.example/bot***/send" in text


def test_json_log_lines_are_masked_too(tmp_path):
    redactor = Redactor()
    redactor.add(SECRET)
    text = _log_failure(redactor, tmp_path, json_lines=True)
    assert SECRET not in text
    record = json.loads(text.splitlines()[0])["record"]
    assert record["exception"]["type"] == "RuntimeError"


def test_an_exception_without_secrets_is_logged_as_it_is(tmp_path):
    redactor = Redactor()
    redactor.add("something-else-entirely")
    assert redactor.sanitized(ValueError("plain")).__class__ is ValueError

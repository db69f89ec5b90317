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
    record = json.loads(text.splitlines()[0])
    assert record["exception"]["type"] == "RuntimeError"
    traceback = record["exception"]["traceback"]
    assert "ConnectionError: cannot reach https://api.example/bot***/send" in traceback


def test_an_exception_without_secrets_is_logged_as_it_is(tmp_path):
    redactor = Redactor()
    redactor.add("something-else-entirely")
    assert redactor.sanitized(ValueError("plain")).__class__ is ValueError


def test_json_lines_are_flat_with_the_ids_at_the_top_level(tmp_path):
    setup_logging(tmp_path, "INFO", True, "10 MB", "1 day", Redactor())
    with logger.contextualize(request_id="rid-1", conversation_id="conv-1"):
        logger.bind(channel="talkme").info("answered {}", "{braces}")
    logger.info("outside a request")
    logger.remove()
    first, second = (json.loads(line) for line in (tmp_path / "app.log").read_text().splitlines())
    assert first["message"] == "answered {braces}"
    assert first["level"] == "INFO"
    assert first["time"][:4].isdigit()
    assert (first["request_id"], first["conversation_id"]) == ("rid-1", "conv-1")
    assert first["channel"] == "talkme"
    assert (second["request_id"], second["conversation_id"]) == (None, None)


def test_an_empty_log_file_setting_logs_to_the_console_only(tmp_path, capsys):
    path = setup_logging(tmp_path / "logs", "INFO", False, "10 MB", "1 day", Redactor(), "")
    logger.info("only on the console")
    logger.remove()
    assert path is None
    assert not (tmp_path / "logs").exists()
    assert "only on the console" in capsys.readouterr().err


def test_the_log_file_setting_names_the_file_under_the_log_dir(tmp_path):
    path = setup_logging(tmp_path, "INFO", False, "10 MB", "1 day", Redactor(), "gw/bot.log")
    logger.info("into the named file")
    logger.remove()
    assert path == tmp_path / "gw" / "bot.log"
    assert "into the named file" in path.read_text()

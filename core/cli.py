"""The ``eneca-bot`` command: ``serve``, ``check``, ``plugins`` and plugins' own commands."""

from __future__ import annotations

import argparse
import asyncio
import inspect
import sys
from collections.abc import Sequence
from typing import Any

from core import __version__
from core.contract.errors import EnecaError


def _parser() -> tuple[argparse.ArgumentParser, argparse._SubParsersAction]:
    parser = argparse.ArgumentParser(prog="eneca-bot", description="eneca-bot chatbot gateway")
    parser.add_argument("--version", action="version", version=f"eneca-bot {__version__}")
    parser.add_argument("--config", help="TOML config file (default config/settings.toml)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--host", help="interface to listen on (HOST)")
    serve.add_argument("--port", type=int, help="port to listen on (PORT)")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="gateway processes sharing the port (above 1 needs the postgres plugin)",
    )
    serve.add_argument("--reuse-port", action="store_true", help=argparse.SUPPRESS)
    serve.add_argument("--config", help="TOML config file (before or after the command)")
    check = commands.add_parser("check", help="validate the configuration and plugins, then exit")
    check.add_argument("--config", help="TOML config file (before or after the command)")
    commands.add_parser("plugins", help="list discovered plugins and whether they are enabled")
    commands.add_parser("config", help="print every setting of the enabled plugins (Markdown)")
    from core.backup import add_parser as add_db
    from core.chat_client import add_parser as add_chat

    add_chat(commands)
    add_db(commands)
    return parser, commands


def _peek_parser() -> argparse.ArgumentParser:
    peek = argparse.ArgumentParser(add_help=False)
    peek.add_argument("--config")
    peek.add_argument("--host")
    peek.add_argument("--port")
    peek.add_argument("command", nargs="?")
    return peek


#: Options accepted before or after the sub-command (``eneca-bot check --config x``).
GLOBAL_OPTIONS = ("--config", "--host", "--port")


def _without_global_options(argv: list[str]) -> list[str]:
    """``argv`` without the global options the peek parser has already read, so the full
    parser (whose sub-commands do not declare them) does not refuse them after a command."""
    kept: list[str] = []
    skip = False
    for index, arg in enumerate(argv):
        if skip:
            skip = False
            continue
        if arg == "--":
            return kept + argv[index:]
        if arg in GLOBAL_OPTIONS:
            skip = True
            continue
        if arg.startswith(tuple(f"{option}=" for option in GLOBAL_OPTIONS)):
            continue
        kept.append(arg)
    return kept


def _overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    core: dict[str, Any] = {}
    for key in ("host", "port"):
        if getattr(args, key, None) is not None:
            core[key] = getattr(args, key)
    return {"core": core} if core else {}


def _fail(message: str) -> int:
    for line in message.splitlines() or [""]:
        print(f"eneca-bot: error: {line}", file=sys.stderr)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser, commands = _parser()
    # Plugins may add commands: peek at the config first (a lenient parser, since the
    # full one rejects a plugin's command before it is added), then add theirs.
    known, _ = _peek_parser().parse_known_args(argv)
    config_file = known.config
    from core.web.app import load_config

    if known.command == "plugins":  # needs only the core settings, not the plugins
        return _list_plugins(config_file)
    if known.command == "chat":  # a client of a running gateway: no configuration read
        from core.chat_client import main as chat

        return chat(argv[argv.index("chat") + 1 :])
    try:
        config = load_config(config_file, overrides=_overrides(known))
    except EnecaError as exc:
        return _fail(str(exc))
    from core.plugins import call_each_sync

    try:
        call_each_sync(config.pm, "register_commands", subparsers=commands)
    except EnecaError as exc:
        return _fail(str(exc))
    args = parser.parse_args(_without_global_options(argv))
    if args.command in (None, "serve"):
        workers = getattr(args, "workers", 1)
        if workers > 1:
            from core.workers import child_command, refusal, supervise

            why = refusal(workers, config.core.plugins)
            return _fail(why) if why else supervise(workers, child_command(argv))
        return _serve(config, reuse_port=getattr(args, "reuse_port", False))
    if args.command == "config":
        from core.config.reference import markdown

        print(markdown(config.plugin_settings), end="")
        return 0
    if args.command == "db":
        from core.backup import run as run_db

        try:
            return run_db(args, config)
        except EnecaError as exc:
            return _fail(str(exc))
    if args.command == "check":
        for note in config.notes:
            print(f"note: {note}")
        for warning in config.warnings:
            print(f"warning: {warning}")
        try:
            problems = _config_problems(config)
        except EnecaError as exc:
            return _fail(str(exc))
        if problems:
            return _fail("\n".join(problems))
        names = ", ".join(name for name, _ in config.pm.list_name_plugin())
        print(f"configuration ok; plugins enabled: {names}")
        return 0
    return _run_plugin_command(args, config)


def _config_problems(config: Any) -> list[str]:
    """Every plugin's ``config_problems`` lines (a loaded gateway, not started)."""
    from core.plugins import call_each_sync
    from core.web.app import create_app
    from core.web.http import GATEWAY

    gateway = create_app(config)[GATEWAY]
    problems: list[str] = []
    for _, lines in call_each_sync(config.pm, "config_problems", gateway=gateway):
        problems.extend(str(line) for line in lines or ())
    return problems


def _list_plugins(config_file: str | None) -> int:
    from pathlib import Path

    from core.config.settings import CoreSettings, build_settings, config_path, read_toml
    from core.plugins import list_plugins

    try:
        path, _ = config_path(config_file)
        core = build_settings(CoreSettings, read_toml(path), Path(".env"))
    except EnecaError as exc:
        return _fail(str(exc))
    rows = list_plugins(core.plugins)
    width = max((len(r.name) for r in rows), default=4)
    for row in rows:
        mark = "enabled " if row.enabled else "disabled"
        print(f"{row.name:<{width}}  {mark}  {row.distribution} {row.version}  ({row.target})")
    return 0


#: Collector thresholds while serving (see ``_tune_gc``).
GC_THRESHOLDS = (10_000, 20, 50)


def _serve(config: Any, reuse_port: bool = False) -> int:
    """Process-wide set-up is decided here, not in ``create_app``: the console logger
    (masking the app's secrets) and the garbage collector's tuning."""
    from aiohttp import web

    from core.logs import add_console_sink
    from core.web.app import LOG_FILE, create_app
    from core.web.http import GATEWAY
    from core.web.serving import notify_stopping, on_serving

    try:
        import uvloop  # optional accelerator
    except ImportError:
        uvloop = None
    from core import tracing
    from core.web import tracing as tracing_web

    core = config.core
    try:
        app = create_app(config)
        redactor = app[GATEWAY]._redactor
        add_console_sink(core.log_level, core.log_json, redactor)
        app.on_startup.append(_tune_gc)  # after the gateway's own start-up
        app.on_shutdown.append(notify_stopping)
        # Off (no OTEL_EXPORTER_OTLP_*ENDPOINT) this imports nothing and adds nothing.
        tracing.configure(version=__version__, mask=redactor, add_secret=redactor.add)
        tracing_web.install(app)
        web.run_app(
            app,
            host=config.core.host,
            port=config.core.port,
            shutdown_timeout=config.core.shutdown_grace_s,
            # A client that hangs up cancels its handler, and so the agent's work for it.
            handler_cancellation=True,
            access_log=None,
            # Called once every socket listens: the start-up line and systemd's READY=1.
            print=on_serving(
                core.host, core.port, config.config_file, core.data_dir, core.log_dir, app[LOG_FILE]
            ),
            loop=uvloop.new_event_loop() if uvloop else None,
            # --workers: every worker listens on the same port; the kernel spreads
            # connections over them.
            reuse_port=reuse_port or None,
        )
    except EnecaError as exc:
        return _fail(str(exc))
    except OSError as exc:
        return _fail(f"cannot listen on {config.core.host}:{config.core.port}: {exc}")
    finally:
        tracing.shutdown()  # what is buffered goes out before the process ends
    return 0


async def _tune_gc(app: Any) -> None:
    """What start-up built (modules, settings, plugins) lives as long as the process: keep
    it out of the cycle collector's full passes, which paused the loop for tens of
    milliseconds under load."""
    import gc

    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def _run_plugin_command(args: argparse.Namespace, config: Any) -> int:
    from core.logs import add_console_sink
    from core.web.app import create_app
    from core.web.http import GATEWAY

    app = create_app(config)
    core = config.core
    add_console_sink(core.log_level, core.log_json, app[GATEWAY]._redactor)
    result = args.func(args, app[GATEWAY])
    if inspect.isawaitable(result):
        try:
            result = asyncio.run(result)
        except EnecaError as exc:
            return _fail(str(exc))
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())

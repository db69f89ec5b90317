"""The storage backends a benchmarked gateway runs on: the embedded SQLite default
(``memory_sqlite``) or PostgreSQL (the ``postgres`` plugin in its place).

A PostgreSQL gateway gets a schema of its own (``eneca_bench_<random>``) on the DSN of
``--postgres-dsn``, ``ENECA_BENCH_POSTGRES_DSN`` or the machine's test server, dropped
when the gateway has stopped; nothing else in the database is touched.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

DEFAULT_POSTGRES_DSN = "postgresql://postgres@127.0.0.1:5432/test"
#: ``--backend`` choices and the backends each one runs, in report order.
CHOICES = {"sqlite": ("sqlite",), "postgres": ("postgres",), "both": ("sqlite", "postgres")}


def postgres_dsn(explicit: str | None = None) -> str:
    """The benchmark's database: the flag, else ``ENECA_BENCH_POSTGRES_DSN``, else the
    local test server."""
    return explicit or os.environ.get("ENECA_BENCH_POSTGRES_DSN") or DEFAULT_POSTGRES_DSN


@dataclass(frozen=True)
class Backend:
    """Where a gateway keeps memory, the inbox/outbox, lanes and idempotency keys."""

    name: str
    dsn: str | None = None
    #: ``False``: PostgreSQL commits without waiting for the WAL flush (a diagnostic:
    #: what durable commits cost on this disk; SQLite runs ``synchronous=NORMAL``).
    synchronous_commit: bool = True

    @property
    def kind(self) -> str:
        """The gateway's key in a round's figures: ``ours`` (SQLite, as in every report
        before PostgreSQL) or ``postgres``."""
        return "ours" if self.name == "sqlite" else self.name

    def plugins(self, plugins: str) -> str:
        """``plugins`` with ``memory_sqlite`` replaced by this backend's plugin."""
        if self.name == "sqlite":
            return plugins
        return ",".join("postgres" if p == "memory_sqlite" else p for p in plugins.split(","))

    @contextmanager
    def settings(self) -> Iterator[dict[str, str]]:
        """A gateway's settings for this backend; a PostgreSQL schema of its own, dropped
        on leaving (after the gateway inside has stopped)."""
        if self.dsn is None:
            yield {}
            return
        schema = f"eneca_bench_{uuid.uuid4().hex[:12]}"
        settings = {"POSTGRES_DSN": self.dsn, "POSTGRES_SCHEMA": schema}
        if not self.synchronous_commit:
            from psycopg.conninfo import make_conninfo

            # The plugin's own start-up option (statement_timeout) would replace these.
            options = "-c synchronous_commit=off"
            settings["POSTGRES_DSN"] = make_conninfo(self.dsn, options=options)
            settings["POSTGRES_STATEMENT_TIMEOUT_MS"] = "0"
        try:
            yield settings
        finally:
            drop_schema(self.dsn, schema)


def backends(
    choice: str, dsn: str | None = None, synchronous_commit: bool = True
) -> tuple[Backend, ...]:
    """The backends of ``--backend choice``; PostgreSQL checked reachable first."""
    names = CHOICES[choice]
    if "postgres" in names:
        dsn = postgres_dsn(dsn)
        check_reachable(dsn)
    return tuple(
        Backend(name, dsn, synchronous_commit) if name == "postgres" else Backend(name)
        for name in names
    )


def check_reachable(dsn: str) -> None:
    """Stop with one line when the database cannot be used."""
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=5, autocommit=True) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
        raise SystemExit(
            f"PostgreSQL not reachable for --backend postgres ({first}); set "
            "--postgres-dsn or ENECA_BENCH_POSTGRES_DSN"
        ) from exc


def drop_schema(dsn: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(dsn, connect_timeout=10, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')

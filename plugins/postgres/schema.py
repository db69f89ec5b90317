"""The plugin's tables and their versioned migrations, run at start-up.

Every table lives in one schema (``POSTGRES_SCHEMA``). The schema is ours when its
``meta`` table says ``owner = eneca-bot``; an empty or missing schema is taken, anything
else (another program's tables) is refused before anything is written. All migrations
run in one transaction under a transaction-scoped advisory lock, so nodes starting at
once migrate once and the lock is gone when the transaction ends (no session lock
outlives it, which PgBouncer in transaction mode would break).
"""

from __future__ import annotations

import psycopg

from core import PluginError

OWNER = "eneca-bot"

#: Migration ``n`` takes a schema from version ``n - 1`` to ``n``; ``{s}`` is the schema.
MIGRATIONS: dict[int, str] = {
    1: """
    CREATE TABLE {s}.conversations (
        id bytea PRIMARY KEY,
        channel bytea NOT NULL,
        created double precision NOT NULL,
        last_activity double precision NOT NULL,
        turns integer NOT NULL DEFAULT 0,
        ord bigint GENERATED ALWAYS AS IDENTITY
    );
    CREATE INDEX conversations_by_activity ON {s}.conversations(last_activity);
    CREATE INDEX conversations_by_channel ON {s}.conversations(channel, last_activity);

    -- Text and ids are bytea: a visitor's text may hold NUL or lone surrogates, which
    -- PostgreSQL text cannot; they are stored as UTF-8 with surrogates passed through.
    CREATE TABLE {s}.turns (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id bytea NOT NULL,
        role text NOT NULL,
        text bytea NOT NULL,
        channel bytea NOT NULL,
        user_id bytea,
        message_id bytea,
        created_at double precision NOT NULL,
        stored_at double precision NOT NULL,
        metadata text NOT NULL DEFAULT '{{}}'
    );
    CREATE INDEX turns_by_conversation ON {s}.turns(conversation_id, seq);
    CREATE UNIQUE INDEX turns_replayed ON {s}.turns(conversation_id, role, message_id)
        WHERE message_id IS NOT NULL;

    -- The conversation row changes in the same statement as the turn it counts.
    CREATE FUNCTION {s}.count_turn() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO {s}.conversations AS c (id, channel, created, last_activity, turns)
        VALUES (NEW.conversation_id, NEW.channel, NEW.stored_at, NEW.stored_at, 1)
        ON CONFLICT (id) DO UPDATE
            SET last_activity = excluded.last_activity, turns = c.turns + 1;
        RETURN NULL;
    END $$;
    CREATE TRIGGER turns_counted AFTER INSERT ON {s}.turns
        FOR EACH ROW EXECUTE FUNCTION {s}.count_turn();

    -- Gateway processes: each writes its heartbeat; the database clock decides who is
    -- alive. Claims below name their node, so a dead node's work can be taken over.
    CREATE TABLE {s}.nodes (
        id text PRIMARY KEY,
        started_at timestamptz NOT NULL DEFAULT now(),
        heartbeat_at timestamptz NOT NULL DEFAULT now(),
        info text NOT NULL DEFAULT '{{}}'
    );

    CREATE TABLE {s}.inbox (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        id text NOT NULL UNIQUE,
        channel text NOT NULL,
        conversation_id text NOT NULL,
        provider_id text,
        message text NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        received_at double precision NOT NULL,
        answered_at double precision,
        claimed_by text,
        trace text
    );
    CREATE UNIQUE INDEX inbox_provider ON {s}.inbox(channel, provider_id)
        WHERE provider_id IS NOT NULL;
    CREATE INDEX inbox_pending ON {s}.inbox(seq) WHERE status = 'pending';

    CREATE TABLE {s}.outbox (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        message_id text NOT NULL UNIQUE,
        channel text NOT NULL,
        conversation_id text NOT NULL,
        reply text NOT NULL,
        status text NOT NULL DEFAULT 'pending',
        attempts integer NOT NULL DEFAULT 0,
        next_attempt_at double precision NOT NULL,
        last_error text,
        created_at double precision NOT NULL,
        delivered_at double precision,
        progress text NOT NULL DEFAULT '{{}}',
        claimed_by text,
        trace text
    );
    CREATE INDEX outbox_pending ON {s}.outbox(conversation_id, seq) WHERE status = 'pending';
    CREATE INDEX outbox_by_channel ON {s}.outbox(channel, seq);

    CREATE TABLE {s}.duplicates (channel text PRIMARY KEY, count bigint NOT NULL);

    -- Conversation lanes across processes. A ticket is a place in a conversation's line,
    -- taken when a message arrives (a kept message's ticket in its accepting statement);
    -- the lowest ticket whose node is alive (or that stands for a kept message) is next.
    -- A lane is a lease: its holder answers, while its node's heartbeat is fresh; each
    -- take-over bumps the epoch, and a holder commits its answer only with its epoch.
    CREATE TABLE {s}.tickets (
        seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        conversation_id text NOT NULL,
        node_id text,
        inbox_id text UNIQUE
    );
    CREATE INDEX tickets_by_conversation ON {s}.tickets(conversation_id, seq);
    CREATE INDEX tickets_by_node ON {s}.tickets(node_id);
    CREATE TABLE {s}.lanes (
        conversation_id text PRIMARY KEY,
        holder text,
        ticket bigint,
        epoch bigint NOT NULL DEFAULT 0
    );
    CREATE INDEX lanes_by_holder ON {s}.lanes(holder) WHERE holder IS NOT NULL;

    -- Who a conversation belongs to (the optional OwnsConversations contract, issue 14).
    CREATE TABLE {s}.owners (
        conversation_id bytea PRIMARY KEY,
        owner text NOT NULL,
        claimed_at double precision NOT NULL
    );
    CREATE INDEX owners_by_owner ON {s}.owners(owner);

    -- Idempotency-Key answers shared by every node: body NULL while the first request
    -- runs (on node_id); a dead node's running entries are dropped by the reaper.
    CREATE TABLE {s}.idempotency (
        scope text PRIMARY KEY,
        thread bytea NOT NULL,
        fingerprint bytea NOT NULL,
        node_id text NOT NULL,
        body text,
        expires_at timestamptz NOT NULL
    );
    CREATE INDEX idempotency_by_thread ON {s}.idempotency(thread);
    CREATE INDEX idempotency_by_expiry ON {s}.idempotency(expires_at);
    """,
    2: """
    -- The request an HTTP ticket was taken for: a node that lost the answer to the
    -- statement taking it (the connection dropped) can still find it and give it up,
    -- instead of leaving a live node's ticket at the head of the line for ever.
    ALTER TABLE {s}.tickets ADD COLUMN request_id text;
    """,
}

LATEST_VERSION = max(MIGRATIONS)


def lock_key(schema: str) -> str:
    """The text whose hash is the advisory lock of ``schema``'s migrations."""
    return f"eneca-bot migrations {schema}"


async def migrate(conn: psycopg.AsyncConnection, schema: str) -> int:
    """Create or bring ``schema`` up to :data:`LATEST_VERSION`; returns the version.

    Raises :class:`PluginError` (one line) for a schema of another program or one
    newer than this code; nothing is written then.
    """
    s = f'"{schema}"'
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (lock_key(schema),))
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
        cursor = await conn.execute(
            "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s",
            (schema,),
        )
        [(relations,)] = await cursor.fetchall()
        cursor = await conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'meta'", (schema,)
        )
        has_meta = bool(await cursor.fetchall())
        version = 0
        if has_meta:
            cursor = await conn.execute(f"SELECT key, value FROM {s}.meta")
            meta = dict(await cursor.fetchall())
            if meta.get("owner") != OWNER:
                raise PluginError(_foreign(schema))
            version = int(meta.get("schema_version", "0"))
        elif relations:
            raise PluginError(_foreign(schema))
        else:
            await conn.execute(f"CREATE TABLE {s}.meta (key text PRIMARY KEY, value text NOT NULL)")
            await conn.execute(
                f"INSERT INTO {s}.meta VALUES ('owner', %s), ('schema_version', '0')", (OWNER,)
            )
        if version > LATEST_VERSION:
            raise PluginError(
                f"PostgreSQL schema {schema!r} has version {version}, newer than this "
                f"eneca-bot understands ({LATEST_VERSION}); upgrade eneca-bot or set "
                "POSTGRES_SCHEMA to another schema"
            )
        for target in range(version + 1, LATEST_VERSION + 1):
            await conn.execute(MIGRATIONS[target].format(s=s))  # type: ignore[arg-type]
            await conn.execute(
                f"UPDATE {s}.meta SET value = %s WHERE key = 'schema_version'", (str(target),)
            )
    return LATEST_VERSION


def _foreign(schema: str) -> str:
    return (
        f"PostgreSQL schema {schema!r} holds tables that are not eneca-bot's; refusing to "
        "write into it. Set POSTGRES_SCHEMA to a new schema"
    )

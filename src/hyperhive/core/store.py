"""The one sqlite database, ``<state>/hive.db``, and its versioned migrations.

sqlite runs in WAL mode. With durability ``normal`` (``synchronous=NORMAL``) a
commit is in the OS before we answer, so killing the daemon (even ``-9``) loses
nothing that was acknowledged; only a power cut can take the last few commits.
With ``full`` (``synchronous=FULL``) each commit is also fsynced before the answer,
so a power cut loses nothing acknowledged either. Statements are short
primary-key reads and writes, so they run on the event loop thread.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Final

from hyperhive.errors import StoreError

# Each entry moves the schema from version i to i + 1. Never edit a shipped
# entry: add a new one, so every existing database takes the same path.
MIGRATIONS: Final[tuple[str, ...]] = (
    """
    CREATE TABLE agents (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('agent', 'manager')),
        allow_send TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sender TEXT NOT NULL,
        recipient TEXT NOT NULL,
        body TEXT NOT NULL,
        kind TEXT NOT NULL CHECK (kind IN ('message', 'event')),
        payload TEXT,
        created_at REAL NOT NULL,
        delivered_at REAL
    );
    CREATE INDEX messages_undelivered ON messages (recipient, id)
        WHERE delivered_at IS NULL;
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    """,
    """
    CREATE TABLE approvals (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('spawn', 'apply_commit')),
        agent TEXT NOT NULL,
        requester TEXT NOT NULL,
        reason TEXT NOT NULL,
        sha TEXT,
        config TEXT,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'approved', 'applied', 'failed', 'denied')),
        decided_by TEXT,
        decision_reason TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        decided_at REAL,
        finished_at REAL
    );
    CREATE INDEX approvals_pending ON approvals (id) WHERE state = 'pending';
    CREATE TABLE questions (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        asker TEXT NOT NULL,
        question TEXT NOT NULL,
        options TEXT,
        multi INTEGER NOT NULL DEFAULT 0,
        answer TEXT,
        answered_by TEXT,
        created_at REAL NOT NULL,
        answered_at REAL
    );
    CREATE TABLE containers (
        name TEXT PRIMARY KEY,
        backend TEXT NOT NULL,
        desired TEXT NOT NULL CHECK (desired IN ('running', 'stopped')),
        state TEXT NOT NULL,
        hive_rev TEXT,
        config_sha TEXT,
        last_error TEXT,
        restarts INTEGER NOT NULL DEFAULT 0,
        updated_at REAL NOT NULL
    );
    """,
    """
    CREATE TABLE agent_uids (
        name TEXT PRIMARY KEY,
        uid INTEGER NOT NULL UNIQUE
    );
    ALTER TABLE approvals ADD COLUMN tree TEXT;
    ALTER TABLE approvals ADD COLUMN digest TEXT;
    ALTER TABLE approvals ADD COLUMN diff TEXT;
    """,
    # ToolUse approvals. sqlite cannot alter a CHECK, so the table is rebuilt with every
    # row and its id counter kept (an id is never handed out twice). ``input`` is the
    # canonical JSON of the tool's input, ``answered_at`` when the agent was told of a
    # denial; ``tool_rules`` holds what the operator approved "always".
    """
    CREATE TABLE approvals_new (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        kind TEXT NOT NULL CHECK (kind IN ('spawn', 'apply_commit', 'tool_use')),
        agent TEXT NOT NULL,
        requester TEXT NOT NULL,
        reason TEXT NOT NULL,
        sha TEXT,
        config TEXT,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'approved', 'applied', 'failed', 'denied')),
        decided_by TEXT,
        decision_reason TEXT,
        error TEXT,
        created_at REAL NOT NULL,
        decided_at REAL,
        finished_at REAL,
        tree TEXT,
        digest TEXT,
        diff TEXT,
        tool TEXT,
        input TEXT,
        always INTEGER NOT NULL DEFAULT 0,
        answered_at REAL
    );
    INSERT INTO approvals_new (id, kind, agent, requester, reason, sha, config, state,
        decided_by, decision_reason, error, created_at, decided_at, finished_at, tree, digest,
        diff)
    SELECT id, kind, agent, requester, reason, sha, config, state, decided_by,
        decision_reason, error, created_at, decided_at, finished_at, tree, digest, diff
    FROM approvals;
    DELETE FROM sqlite_sequence WHERE name = 'approvals_new';
    INSERT INTO sqlite_sequence (name, seq)
        SELECT 'approvals_new', seq FROM sqlite_sequence WHERE name = 'approvals';
    DROP TABLE approvals;
    ALTER TABLE approvals_new RENAME TO approvals;
    CREATE INDEX approvals_pending ON approvals (id) WHERE state = 'pending';
    CREATE INDEX approvals_tool_use ON approvals (agent, tool, id) WHERE kind = 'tool_use';
    CREATE TABLE tool_rules (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        agent TEXT NOT NULL,
        tool TEXT NOT NULL,
        input TEXT NOT NULL,
        approval_id INTEGER,
        created_at REAL NOT NULL,
        revoked_at REAL
    );
    CREATE INDEX tool_rules_live ON tool_rules (agent, tool) WHERE revoked_at IS NULL;
    """,
    # 5: idempotent sends (a client's key, unique per sender while it is set) and
    # messages that failed for their own sake (attempts, then dead-letter).
    """
    ALTER TABLE messages ADD COLUMN key TEXT;
    CREATE UNIQUE INDEX messages_key ON messages (sender, key) WHERE key IS NOT NULL;
    ALTER TABLE messages ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE messages ADD COLUMN dead_at REAL;
    ALTER TABLE messages ADD COLUMN dead_reason TEXT;
    CREATE INDEX messages_dead ON messages (id) WHERE dead_at IS NOT NULL;
    """,
    # 6: each agent's page port, assigned by the core (core/ports.py). SQL has no sha256,
    # so existing rows get theirs when the registry first loads them (in name order).
    """
    ALTER TABLE agents ADD COLUMN port INTEGER;
    CREATE UNIQUE INDEX agents_port ON agents (port);
    """,
    # 7: metering (core/gateway/ledger.py). Spend per agent per UTC day and per time bucket
    # (costs in nano-USD, exact); the operator's budget overrides (scope '' is the hive;
    # has_* says a field is set, its value NULL meaning no limit); pauses and resumes.
    """
    CREATE TABLE usage_days (
        agent TEXT NOT NULL,
        day TEXT NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        input_tokens INTEGER NOT NULL DEFAULT 0,
        output_tokens INTEGER NOT NULL DEFAULT 0,
        cache_creation_input_tokens INTEGER NOT NULL DEFAULT 0,
        cache_read_input_tokens INTEGER NOT NULL DEFAULT 0,
        cost_nusd INTEGER NOT NULL DEFAULT 0,
        unpriced INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, day)
    );
    CREATE INDEX usage_days_day ON usage_days (day);
    CREATE TABLE usage_buckets (
        agent TEXT NOT NULL,
        start INTEGER NOT NULL,
        requests INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER NOT NULL DEFAULT 0,
        cost_nusd INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (agent, start)
    );
    CREATE INDEX usage_buckets_start ON usage_buckets (start);
    CREATE TABLE budget_overrides (
        scope TEXT PRIMARY KEY,
        has_usd INTEGER NOT NULL DEFAULT 0,
        usd_nusd INTEGER,
        has_tokens INTEGER NOT NULL DEFAULT 0,
        tokens INTEGER,
        set_at REAL NOT NULL
    );
    CREATE TABLE budget_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        scope TEXT NOT NULL,
        day TEXT NOT NULL,
        what TEXT NOT NULL CHECK (what IN ('warn', 'paused', 'ok', 'resumed')),
        text TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX budget_log_day ON budget_log (scope, day, what);
    """,
    # 8: the audit log (core/audit.py): append-only, each entry carries the hash of the
    # previous one, so an edited, removed or reordered entry is found by `hive audit verify`.
    """
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        actor TEXT NOT NULL,
        via TEXT NOT NULL,
        action TEXT NOT NULL,
        agent TEXT,
        detail TEXT NOT NULL,
        prev TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_log_agent ON audit_log (agent, id);
    CREATE INDEX audit_log_at ON audit_log (at);
    """,
    # 9: the notification outbox (core/notify/): one row per sink and notification, kept
    # until delivered or given up on, so a restart or a receiver that is down loses none.
    # A row ``folded`` into a digest row names it in ``folded_into``.
    """
    CREATE TABLE notify_outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        sink TEXT NOT NULL,
        kind TEXT NOT NULL,
        payload TEXT NOT NULL,
        created REAL NOT NULL,
        tries INTEGER NOT NULL DEFAULT 0,
        next_at REAL NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending'
            CHECK (state IN ('pending', 'delivered', 'dropped', 'folded')),
        last_error TEXT,
        done_at REAL,
        folded_into INTEGER
    );
    CREATE INDEX notify_outbox_due ON notify_outbox (state, sink, next_at);
    CREATE INDEX notify_outbox_done ON notify_outbox (done_at) WHERE state != 'pending';
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)
SYNCHRONOUS: Final = {"normal": "NORMAL", "full": "FULL"}


def open_store(path: Path, *, durability: str = "normal") -> sqlite3.Connection:
    """Open (creating if needed) and migrate the database at ``path``.

    A file that is not a sqlite database, or whose schema is newer than this
    code knows, is a :class:`StoreError`; it is never rewritten.
    """
    synchronous = SYNCHRONOUS.get(durability)
    if synchronous is None:
        raise StoreError(f"unknown durability {durability!r}: choose one of normal, full")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        # Read-only checks first: a database we refuse must stay byte-identical,
        # and switching to WAL already writes its header.
        conn.execute("PRAGMA busy_timeout=5000")
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"database {path} has schema version {version}, newer than this hyperhive "
                f"understands ({SCHEMA_VERSION}); upgrade hyperhive or use another state dir"
            )
        check = conn.execute("PRAGMA quick_check").fetchone()
        if check is None or check[0] != "ok":
            raise StoreError(f"database {path} failed its integrity check: {check}")
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={synchronous}")
        conn.execute("PRAGMA foreign_keys=ON")
        migrate(conn, version)
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise StoreError(f"database {path} is unreadable ({exc}); refusing to touch it") from exc
    except StoreError:
        conn.close()
        raise
    return conn


def durability(conn: sqlite3.Connection) -> str:
    """The durability ``conn`` runs with, read back from sqlite itself."""
    value: int = conn.execute("PRAGMA synchronous").fetchone()[0]
    named = {1: "normal", 2: "full"}  # sqlite's numbers for NORMAL and FULL
    return named.get(value, f"synchronous={value}")


def migrate(conn: sqlite3.Connection, version: int) -> None:
    for target in range(version + 1, SCHEMA_VERSION + 1):
        # executescript commits first, so wrap the step in our own transaction
        # to make the schema change and the version bump one atomic unit.
        conn.executescript(
            f"BEGIN IMMEDIATE;\n{MIGRATIONS[target - 1]}\nPRAGMA user_version = {target};\nCOMMIT;"
        )

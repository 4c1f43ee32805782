"""sqlite's migrations: entry i moves a database from schema version i to i + 1.

core/db/postgres_schema.py holds the same steps in PostgreSQL's words; a test
checks that both end in the same tables and columns.
"""

from __future__ import annotations

from typing import Final

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
    # 10: hosts (core/hosts/): each core sharing the store names itself, advertises its
    # front door and beats; each agent belongs to one host, which alone runs it. Agents
    # from before get theirs when a core first loads them (core/registry.py).
    """
    CREATE TABLE hosts (
        name TEXT PRIMARY KEY,
        url TEXT,
        started_at REAL NOT NULL,
        heartbeat_at REAL NOT NULL,
        agents INTEGER NOT NULL DEFAULT 0,
        cpus INTEGER NOT NULL DEFAULT 1,
        load REAL NOT NULL DEFAULT 0,
        mem_available INTEGER NOT NULL DEFAULT 0
    );
    ALTER TABLE agents ADD COLUMN host TEXT;
    CREATE INDEX agents_host ON agents (host);
    """,
    # 11: approvals across hosts (core/applied_configs.py): the pinned config an approval
    # applies to another host's agent, read by hm1nd's host from its proposals and applied
    # by the agent's host; ``approvals.host``: the host a spawn approval spawns on.
    """
    CREATE TABLE applied_configs (
        approval_id INTEGER PRIMARY KEY,
        agent TEXT NOT NULL,
        sha TEXT NOT NULL,
        tree TEXT NOT NULL,
        digest TEXT NOT NULL,
        files TEXT NOT NULL,
        created_at REAL NOT NULL
    );
    CREATE INDEX applied_configs_agent ON applied_configs (agent, approval_id);
    ALTER TABLE approvals ADD COLUMN host TEXT;
    """,
    # 12: whether a host runs agents: a core started with --no-containers has no backend,
    # so no spawn is ever placed on it (core/hosts/status.py). Rows from before: it does.
    """
    ALTER TABLE hosts ADD COLUMN runs_agents INTEGER NOT NULL DEFAULT 1;
    """,
)
SCHEMA_VERSION: Final = len(MIGRATIONS)

"""Versioned schema. Append a migration; never edit one that has shipped.

The DDL is kept portable (PostgreSQL accepts it too) so the scale-out backend can
share it.
"""

from __future__ import annotations

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "workloads, join tokens, federation bundles, admin credentials, audit chain",
        [
            """CREATE TABLE workloads (
                spiffe_id TEXT PRIMARY KEY,
                selectors TEXT NOT NULL,
                owner TEXT,
                status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE join_tokens (
                token_hash TEXT PRIMARY KEY,
                spiffe_id TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                used_at DOUBLE PRECISION)""",
            """CREATE TABLE federated_bundles (
                trust_domain TEXT PRIMARY KEY,
                bundle_json TEXT NOT NULL,
                sequence BIGINT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE admin_credentials (
                credential_id TEXT PRIMARY KEY,
                credential_hash TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE audit_events (
                seq BIGINT PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                time TEXT NOT NULL,
                kind TEXT NOT NULL,
                outcome TEXT NOT NULL,
                body TEXT NOT NULL,
                prev_hash TEXT NOT NULL,
                hash TEXT NOT NULL)""",
            "CREATE INDEX audit_events_kind ON audit_events (kind)",
        ],
    ),
]


MIGRATIONS.append(
    (
        2,
        "playbooks and tasks",
        [
            """CREATE TABLE playbooks (
                name TEXT PRIMARY KEY,
                document TEXT NOT NULL,
                version BIGINT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL)""",
            """CREATE TABLE tasks (
                task_id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                playbook TEXT NOT NULL,
                playbook_version BIGINT NOT NULL,
                intent TEXT NOT NULL,
                scope TEXT NOT NULL,
                authorization_details TEXT NOT NULL,
                jkt TEXT NOT NULL,
                audience TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                max_calls BIGINT NOT NULL,
                calls_used BIGINT NOT NULL,
                touched INTEGER NOT NULL,
                token_jti TEXT NOT NULL,
                on_behalf_of TEXT,
                parent_id TEXT,
                depth INTEGER NOT NULL,
                ended_at DOUBLE PRECISION,
                end_reason TEXT)""",
            "CREATE INDEX tasks_owner ON tasks (owner, created_at)",
            "CREATE INDEX tasks_parent ON tasks (parent_id)",
        ],
    )
)
MIGRATIONS.append(
    (
        3,
        "grant leases",
        [
            """CREATE TABLE leases (
                lease_id TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                broker TEXT NOT NULL,
                handle TEXT NOT NULL,
                state TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL,
                attempts INTEGER NOT NULL,
                last_error TEXT,
                next_attempt_at DOUBLE PRECISION,
                end_reason TEXT)""",
            "CREATE INDEX leases_task ON leases (task_id)",
            "CREATE INDEX leases_state ON leases (state, next_attempt_at)",
        ],
    )
)
MIGRATIONS.append(
    (
        4,
        "the person a task acts for (verified from an ID token)",
        [
            "ALTER TABLE tasks ADD COLUMN user_subject TEXT",
            "ALTER TABLE tasks ADD COLUMN user_issuer TEXT",
        ],
    )
)
MIGRATIONS.append(
    (
        5,
        "one-time proofs spent by any process (DPoP jti): usable once, across restarts",
        [
            """CREATE TABLE spent_proofs (
                digest BLOB PRIMARY KEY,
                expires_at DOUBLE PRECISION NOT NULL)""",
            "CREATE INDEX spent_proofs_expiry ON spent_proofs (expires_at)",
        ],
    )
)
MIGRATIONS.append(
    (
        6,
        "enforcement points allowed to ask for decisions (POST /v1/decide)",
        [
            """CREATE TABLE enforcement_points (
                name TEXT PRIMARY KEY,
                credential_hash TEXT NOT NULL,
                urls TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
        ],
    )
)
MIGRATIONS.append(
    (
        7,
        "detector cursors: where each detector is in the audit log, and its open windows",
        [
            """CREATE TABLE detector_cursors (
                detector TEXT PRIMARY KEY,
                seq BIGINT NOT NULL,
                state TEXT NOT NULL,
                updated_at DOUBLE PRECISION NOT NULL)""",
        ],
    )
)
MIGRATIONS.append(
    (
        8,
        "human approvals of requests a policy asked for, bound to the request's digest",
        [
            """CREATE TABLE approvals (
                approval_id TEXT PRIMARY KEY,
                task_id TEXT NOT NULL,
                action TEXT NOT NULL,
                resource TEXT NOT NULL,
                destination TEXT NOT NULL,
                digest TEXT NOT NULL,
                policy_version TEXT NOT NULL,
                policies TEXT NOT NULL,
                requester TEXT NOT NULL,
                status TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL,
                expires_at DOUBLE PRECISION NOT NULL,
                decided_at DOUBLE PRECISION,
                approver TEXT,
                reason TEXT,
                used_at DOUBLE PRECISION)""",
            "CREATE INDEX approvals_task ON approvals (task_id, status)",
            "CREATE INDEX approvals_created ON approvals (created_at)",
        ],
    )
)
MIGRATIONS.append(
    (
        9,
        "what an approver is shown (a masked preview); approvals pruned by expiry; tasks "
        "held for human approval by a response rule",
        [
            "ALTER TABLE approvals ADD COLUMN preview TEXT",
            "CREATE INDEX approvals_expires ON approvals (expires_at)",
            """CREATE TABLE task_holds (
                task_id TEXT PRIMARY KEY,
                rule TEXT NOT NULL,
                detector TEXT NOT NULL,
                detection TEXT NOT NULL,
                created_at DOUBLE PRECISION NOT NULL)""",
        ],
    )
)
MIGRATIONS.append(
    (
        10,
        "risk scores, one row per task or workload, written with the responder's cursor "
        "for the keys a step changed and read by version (they were its cursor's state)",
        [
            """CREATE TABLE risk_scores (
                kind TEXT NOT NULL,
                key TEXT NOT NULL,
                value DOUBLE PRECISION NOT NULL,
                at DOUBLE PRECISION NOT NULL,
                forget_at DOUBLE PRECISION NOT NULL,
                version BIGINT NOT NULL,
                PRIMARY KEY (kind, key))""",
            "CREATE INDEX risk_scores_version ON risk_scores (version)",
            "CREATE INDEX risk_scores_forget ON risk_scores (forget_at)",
        ],
    )
)
#: Migrations may be appended out of version order when two land at once: the loader
#: applies every version the database lacks, in version order.
LATEST = max(version for version, _, _ in MIGRATIONS)

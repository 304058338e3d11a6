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

LATEST = MIGRATIONS[-1][0]

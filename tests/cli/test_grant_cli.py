"""``zerolane grant list|retry`` against a real home and the real PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from psycopg import sql
from typer.testing import CliRunner, Result

from tests.grants.pg import SHARED_URL, shared_admin
from tests.grants.test_postgres_role import task_record
from zerolane.cli import grant
from zerolane.cli import home as home_cli
from zerolane.config import (
    CONFIG_NAME,
    GrantsConfig,
    PostgresGrantConfig,
    load_config,
    render_config,
)
from zerolane.fsutil import write_private
from zerolane.grants.broker import parse_template
from zerolane.grants.postgres_role import PostgresRoleBroker
from zerolane.server.deployment import Deployment
from zerolane.store.records import LeaseRecord, LeaseState

runner = CliRunner()
app = typer.Typer()
home_cli.register(app)
app.add_typer(grant.app, name="grant")
DOWN = "postgresql://postgres@127.0.0.1:1/test"


def _run(home: Path, *args: str) -> Result:
    return runner.invoke(app, ["grant", *args, "--home", str(home)])


def _configure(home: Path, url: str, prefix: str) -> None:
    config = load_config(home)
    grants = GrantsConfig(
        postgres=PostgresGrantConfig(url=url, role_prefix=prefix, connect_timeout=2)
    )
    write_private(
        home / CONFIG_NAME, render_config(dataclasses.replace(config, grants=grants)).encode()
    )


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Path, str, str]]:
    """A home whose PostgreSQL is down, holding one failed lease of a real role."""
    admin = shared_admin()
    sfx = secrets.token_hex(4)
    template, prefix = f"zt_cli_{sfx}", f"zt{sfx}_"
    admin.execute(sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(template)))
    home = tmp_path / "home"
    result = runner.invoke(app, ["init", "--trust-domain", "example.org", "--home", str(home)])
    assert result.exit_code == 0, result.output
    _configure(home, DOWN, prefix)
    broker = PostgresRoleBroker(SHARED_URL, role_prefix=prefix)
    task = task_record()
    handle = broker.new_handle(task)
    broker.issue(handle, task, parse_template("postgres", {"role": template}), task.expires_at)
    deployment = Deployment.open(home)
    now = time.time()
    deployment.stores.add_lease(
        LeaseRecord(
            lease_id="lse_cli",
            task_id=task.task_id,
            broker="postgres",
            handle=handle,
            state=LeaseState.FAILED,
            created_at=now,
            expires_at=task.expires_at,
            updated_at=now,
            attempts=1,
            last_error="grant.postgres: connecting to PostgreSQL failed",
            next_attempt_at=now + 3600,
            end_reason="task.completed",
        )
    )
    deployment.close()
    try:
        yield home, handle, prefix
    finally:
        for (left,) in admin.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (prefix,)
        ).fetchall():
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(str(left))))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(template)))
        admin.close()


def _role_exists(handle: str) -> bool:
    with shared_admin() as admin:
        return (
            admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (handle,)).fetchone()
            is not None
        )


def test_a_failed_revocation_is_listed_retried_and_finally_done(
    setup: tuple[Path, str, str],
) -> None:
    home, handle, prefix = setup
    listed = _run(home, "list", "--failed", "--json")
    assert listed.exit_code == 0, listed.output
    [lease] = json.loads(listed.output)
    assert (lease["lease_id"], lease["state"], lease["handle"]) == ("lse_cli", "failed", handle)
    assert "connecting to PostgreSQL failed" in lease["last_error"]

    still = _run(home, "retry")  # PostgreSQL is still down: exit 1, still listed
    assert still.exit_code == 1
    assert "still failing lse_cli" in still.output
    [lease] = json.loads(_run(home, "list", "--failed", "--json").output)
    assert lease["attempts"] == 2
    assert _role_exists(handle)

    _configure(home, SHARED_URL, prefix)  # it is back
    done = _run(home, "retry")
    assert done.exit_code == 0, done.output
    assert f"revoked lse_cli (postgres {handle})" in done.output
    assert not _role_exists(handle)
    assert json.loads(_run(home, "list", "--failed", "--json").output) == []
    table = _run(home, "list", "--task", "tsk_pg")
    assert "revoked" in table.output
    assert _run(home, "retry").output.strip() == "nothing to retry"

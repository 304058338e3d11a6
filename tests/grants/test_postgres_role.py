"""The PostgreSQL role-per-task broker, against real PostgreSQL servers.

The attack-table rows: a task's role logs in and reads what its template grants while
the task lives (the twin), cannot exceed the template, and cannot log in once the task
has ended. On the shared server (trust auth on 127.0.0.1) a password is never checked,
so there the proof is that the role is gone; the private scram-sha-256 server checks
the password and ``VALID UNTIL`` as production does.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests.grants.pg import SHARED_URL, ScramCluster, shared_admin
from tests.identity.attestors.cases import FixedClock
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden, InvalidInput, Unavailable
from zerolane.grants.broker import GrantSecret, GrantTemplate, parse_template
from zerolane.grants.leases import LeaseManager
from zerolane.grants.postgres_role import PostgresRoleBroker
from zerolane.store.memory import MemoryStores
from zerolane.store.records import LeaseState, TaskRecord
from zerolane.types import TaskState

Admin = psycopg.Connection[tuple[object, ...]]


def task_record(task_id: str = "tsk_pg", ttl: float = 600) -> TaskRecord:
    now = time.time()
    return TaskRecord(
        task_id=task_id,
        owner="spiffe://example.org/agents/a1",
        playbook="reports",
        playbook_version=1,
        intent="read reports",
        scope="{}",
        authorization_details="[]",
        jkt="jkt",
        audience=(),
        state=TaskState.ACTIVE,
        created_at=now,
        expires_at=now + ttl,
        max_calls=10,
        calls_used=0,
        touched=-1,
        token_jti="jti",
    )


class Fixture:
    """A template role, a granted table and a forbidden one, all named for one test."""

    def __init__(self, admin: Admin) -> None:
        self.admin = admin
        sfx = secrets.token_hex(4)
        self.prefix = f"zt{sfx}_"
        self.reader = f"zt_reader_{sfx}"
        self.reports = f"zt_reports_{sfx}"
        self.payroll = f"zt_payroll_{sfx}"
        self.schema = f"zt_scratch_{sfx}"
        self.extra_roles: list[str] = []
        run = self.run
        run("CREATE ROLE {} NOLOGIN", self.reader)
        run("CREATE TABLE {} (quarter text, revenue int)", self.reports)
        run("INSERT INTO {} VALUES ('q3', 42)", self.reports)
        run("CREATE TABLE {} (name text, salary int)", self.payroll)
        run("GRANT SELECT ON {} TO {}", self.reports, self.reader)
        run("CREATE SCHEMA {}", self.schema)

    def run(self, statement: str, *names: str) -> None:
        self.admin.execute(sql.SQL(statement).format(*(sql.Identifier(n) for n in names)))

    def role(self, name: str, attributes: str = "NOLOGIN") -> str:
        role = f"{name}_{self.prefix}"
        self.admin.execute(sql.SQL("CREATE ROLE {} " + attributes).format(sql.Identifier(role)))
        self.extra_roles.append(role)
        return role

    def task_roles(self) -> list[str]:
        rows = self.admin.execute(
            "SELECT rolname FROM pg_roles WHERE starts_with(rolname, %s)", (self.prefix,)
        ).fetchall()
        return [str(r[0]) for r in rows]

    def cleanup(self) -> None:
        for role in self.task_roles():
            self.run("DROP OWNED BY {}", role)
            self.run("DROP ROLE {}", role)
        self.run("DROP SCHEMA IF EXISTS {} CASCADE", self.schema)
        self.run("DROP TABLE IF EXISTS {}, {}", self.reports, self.payroll)
        for role in [self.reader, *self.extra_roles]:
            self.run("DROP OWNED BY {}", role)
            self.run("DROP ROLE IF EXISTS {}", role)


@pytest.fixture
def db() -> Iterator[Fixture]:
    admin = shared_admin()
    fixture = Fixture(admin)
    try:
        yield fixture
    finally:
        fixture.cleanup()
        admin.close()


@pytest.fixture
def broker(db: Fixture) -> PostgresRoleBroker:
    return PostgresRoleBroker(SHARED_URL, role_prefix=db.prefix)


def grant(broker: PostgresRoleBroker, role: str, task: TaskRecord | None = None) -> GrantSecret:
    task = task or task_record()
    handle = broker.new_handle(task)
    return broker.issue(handle, task, parse_template("postgres", {"role": role}), task.expires_at)


def role_row(admin: Admin, role: str) -> tuple[object, ...] | None:
    return admin.execute(
        "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolreplication, "
        "rolbypassrls, rolconnlimit, rolvaliduntil FROM pg_roles WHERE rolname = %s",
        (role,),
    ).fetchone()


def scram_accepts(verifier: str, password: str) -> bool:
    """Whether ``password`` matches a stored ``SCRAM-SHA-256$iter:salt$stored:server``."""
    _, params, keys = verifier.split("$")
    iterations, salt = params.split(":")
    stored = base64.b64decode(keys.split(":")[0])
    salted = hashlib.pbkdf2_hmac(
        "sha256", password.encode(), base64.b64decode(salt), int(iterations)
    )
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    return hmac.compare_digest(hashlib.sha256(client_key).digest(), stored)


# during the task: exactly the template's privileges


def test_the_task_role_reads_what_the_template_grants(
    db: Fixture, broker: PostgresRoleBroker
) -> None:
    secret = grant(broker, db.reader)
    with psycopg.connect(secret.values["dsn"]) as conn:
        assert conn.execute(
            sql.SQL("SELECT * FROM {}").format(sql.Identifier(db.reports))
        ).fetchall() == [("q3", 42)]
        assert conn.execute("SELECT current_user").fetchone() == (secret.values["user"],)


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT * FROM {payroll}",
        "INSERT INTO {reports} VALUES ('q4', 1)",
        "DELETE FROM {reports}",
        "CREATE ROLE zt_escalate LOGIN",
        "CREATE DATABASE zt_escalate",
        "SET ROLE postgres",
        "CREATE TABLE {schema}.t (x int)",
        "COPY {reports} TO PROGRAM 'true'",
    ],
)
def test_the_task_role_cannot_exceed_the_template(
    db: Fixture, broker: PostgresRoleBroker, statement: str
) -> None:
    secret = grant(broker, db.reader)
    text = statement.format(payroll=db.payroll, reports=db.reports, schema=db.schema)
    with (
        psycopg.connect(secret.values["dsn"], autocommit=True) as conn,
        pytest.raises(psycopg.Error) as caught,
    ):
        conn.execute(text)
    assert caught.value.sqlstate == "42501"  # insufficient_privilege


def test_the_role_is_bounded_and_its_password_is_the_one_returned(
    db: Fixture, broker: PostgresRoleBroker
) -> None:
    task = task_record(ttl=900)
    secret = grant(broker, db.reader, task)
    user = secret.values["user"]
    row = role_row(db.admin, user)
    assert row is not None
    can_login, *powers, limit, until = row
    assert can_login is True
    assert not any(powers)
    assert limit == 5
    assert abs(until.timestamp() - task.expires_at) < 1  # type: ignore[attr-defined]
    verifier = db.admin.execute(
        "SELECT rolpassword FROM pg_authid WHERE rolname = %s", (user,)
    ).fetchone()
    assert verifier is not None
    assert str(verifier[0]).startswith("SCRAM-SHA-256$")  # hashed before it was sent
    assert scram_accepts(str(verifier[0]), secret.values["password"])
    assert not scram_accepts(str(verifier[0]), secret.values["password"] + "x")
    assert secret.values["password"] not in repr(secret)


def test_each_task_gets_its_own_role_and_password(db: Fixture, broker: PostgresRoleBroker) -> None:
    first, second = grant(broker, db.reader), grant(broker, db.reader)
    assert first.values["user"] != second.values["user"]
    assert first.values["password"] != second.values["password"]


def test_the_connection_limit_comes_from_the_template(
    db: Fixture, broker: PostgresRoleBroker
) -> None:
    task = task_record()
    template = parse_template("postgres", {"role": db.reader, "connection_limit": 1})
    handle = broker.new_handle(task)
    broker.issue(handle, task, template, task.expires_at)
    row = role_row(db.admin, handle)
    assert row is not None
    assert row[6] == 1


# after the task: gone


def test_after_revocation_the_role_is_gone_its_sessions_ended_and_login_fails(
    db: Fixture, broker: PostgresRoleBroker
) -> None:
    secret = grant(broker, db.reader)
    user = secret.values["user"]
    session = psycopg.connect(secret.values["dsn"], autocommit=True)
    broker.revoke(user)
    assert role_row(db.admin, user) is None
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")  # terminated, not left running
    session.close()
    with pytest.raises(psycopg.OperationalError, match="does not exist"):
        psycopg.connect(secret.values["dsn"], connect_timeout=3)
    broker.revoke(user)  # idempotent: a role already gone is done


def test_what_the_task_role_created_is_kept_by_its_template(
    db: Fixture, broker: PostgresRoleBroker
) -> None:
    db.run("GRANT USAGE, CREATE ON SCHEMA {} TO {}", db.schema, db.reader)
    secret = grant(broker, db.reader)
    with psycopg.connect(secret.values["dsn"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE TABLE {}.summary (x int)").format(sql.Identifier(db.schema)))
    broker.revoke(secret.values["user"])
    owner = db.admin.execute(
        "SELECT tableowner FROM pg_tables WHERE schemaname = %s AND tablename = 'summary'",
        (db.schema,),
    ).fetchone()
    assert owner == (db.reader,)  # REASSIGN OWNED: the work survives, the role does not


def test_an_object_left_behind_never_runs_with_the_admins_privileges(
    db: Fixture, broker: PostgresRoleBroker
) -> None:
    """Attack: a task role plants a view over a table it cannot read (views run as their
    owner) and a SECURITY DEFINER function; if revocation handed them to the admin, the
    next task would read payroll (and run SQL as the admin). Twin: the view still reads
    what the template may read."""
    db.run("GRANT USAGE, CREATE ON SCHEMA {} TO {}", db.schema, db.reader)
    planted = grant(broker, db.reader)
    schema, payroll = sql.Identifier(db.schema), sql.Identifier(db.payroll)
    with psycopg.connect(planted.values["dsn"], autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE VIEW {}.leak AS SELECT * FROM {}").format(schema, payroll))
        conn.execute(
            sql.SQL("CREATE VIEW {}.twin AS SELECT * FROM {}").format(
                schema, sql.Identifier(db.reports)
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE FUNCTION {}.whoami() RETURNS text LANGUAGE sql SECURITY DEFINER "
                "AS 'SELECT current_user::text'"
            ).format(schema)
        )
        conn.execute(sql.SQL("GRANT SELECT ON {}.leak, {}.twin TO PUBLIC").format(schema, schema))
    broker.revoke(planted.values["user"])
    later = grant(broker, db.reader, task_record("tsk_later"))
    with psycopg.connect(later.values["dsn"], autocommit=True) as conn:
        assert conn.execute(sql.SQL("SELECT * FROM {}.twin").format(schema)).fetchall() == [
            ("q3", 42)
        ]
        assert conn.execute(sql.SQL("SELECT {}.whoami()").format(schema)).fetchone() == (db.reader,)
        with pytest.raises(psycopg.Error) as caught:
            conn.execute(sql.SQL("SELECT * FROM {}.leak").format(schema))
    assert caught.value.sqlstate == "42501"  # insufficient_privilege


def test_a_createrole_admin_that_is_no_superuser_can_revoke(db: Fixture) -> None:
    """The documented admin (LOGIN CREATEROLE, no superuser) drops a task role whose
    session is open and which created objects."""
    admin = db.role("adm", "LOGIN CREATEROLE")
    db.run("GRANT USAGE, CREATE ON SCHEMA {} TO {}", db.schema, db.reader)
    broker = PostgresRoleBroker(f"postgresql://{admin}@127.0.0.1:5432/test", role_prefix=db.prefix)
    secret = grant(broker, db.reader)
    user = secret.values["user"]
    session = psycopg.connect(secret.values["dsn"], autocommit=True)
    session.execute(sql.SQL("CREATE TABLE {}.mine (x int)").format(sql.Identifier(db.schema)))
    broker.revoke(user)
    assert role_row(db.admin, user) is None
    with pytest.raises(psycopg.OperationalError):
        session.execute("SELECT 1")
    session.close()


# templates that would hand out too much


@pytest.mark.parametrize(
    ("attributes", "reason"),
    [
        ("LOGIN", "grant.template_login"),
        ("NOLOGIN SUPERUSER", "grant.template_privileged"),
        ("NOLOGIN CREATEROLE", "grant.template_privileged"),
        ("NOLOGIN CREATEDB", "grant.template_privileged"),
        ("NOLOGIN BYPASSRLS", "grant.template_privileged"),
    ],
)
def test_a_powerful_template_is_refused(
    db: Fixture, broker: PostgresRoleBroker, attributes: str, reason: str
) -> None:
    template = db.role("tpl", attributes)
    with pytest.raises(Forbidden) as caught:
        grant(broker, template)
    assert caught.value.reason == reason
    assert db.task_roles() == []  # nothing was created


@pytest.mark.parametrize("parent", ["pg_read_server_files", "pg_execute_server_program", "admin"])
def test_a_template_inheriting_power_is_refused(
    db: Fixture, broker: PostgresRoleBroker, parent: str
) -> None:
    template = db.role("tpl")
    if parent == "admin":
        parent = db.role("adm", "NOLOGIN CREATEROLE")
    db.run("GRANT {} TO {}", parent, template)
    with pytest.raises(Forbidden) as caught:
        grant(broker, template)
    assert caught.value.reason == "grant.template_privileged"
    assert db.task_roles() == []


def test_a_missing_template_is_refused(db: Fixture, broker: PostgresRoleBroker) -> None:
    with pytest.raises(Forbidden) as caught:
        grant(broker, f"zt_missing_{secrets.token_hex(4)}")
    assert caught.value.reason == "grant.template_missing"


def test_the_configured_allowlist_is_enforced(db: Fixture) -> None:
    other = db.role("tpl")
    broker = PostgresRoleBroker(SHARED_URL, role_prefix=db.prefix, templates=[db.reader])
    with pytest.raises(Forbidden) as caught:
        grant(broker, other)
    assert caught.value.reason == "grant.template_not_allowed"
    assert grant(broker, db.reader).values["user"].startswith(db.prefix)


def test_another_task_role_is_no_template(db: Fixture, broker: PostgresRoleBroker) -> None:
    first = grant(broker, db.reader).values["user"]
    db.run("ALTER ROLE {} NOLOGIN", first)
    with pytest.raises(Forbidden) as caught:
        grant(broker, first)
    assert caught.value.reason == "grant.template_privileged"


# names and configuration


@pytest.mark.parametrize(
    "role", ['x"; DROP ROLE postgres; --', "Reader", "pg_monitor", "a b", "", "r" * 64]
)
def test_template_names_are_validated_before_any_sql(role: str) -> None:
    with pytest.raises(InvalidInput):
        parse_template("postgres", {"role": role})


@pytest.mark.parametrize("handle", ["postgres", "zl_x", "zl_0123456789abcdef0123; DROP ROLE x"])
def test_the_broker_only_touches_roles_it_names(db: Fixture, handle: str) -> None:
    broker = PostgresRoleBroker(SHARED_URL)
    with pytest.raises(InvalidInput) as caught:
        broker.revoke(handle)
    assert caught.value.reason == "grant.handle"
    assert db.admin.execute("SELECT 1 FROM pg_roles WHERE rolname = 'postgres'").fetchone()


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("postgresql://postgres:hunter2@127.0.0.1/test", "grant.postgres_url"),
        ("host=127.0.0.1 password=hunter2 dbname=test", "grant.postgres_url"),
        ("postgresql://postgres@127.0.0.1", "grant.postgres_url"),
        ("not a url at all ===", "grant.postgres_url"),
    ],
)
def test_bad_admin_urls_are_refused(url: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        PostgresRoleBroker(url)
    assert caught.value.reason == reason
    assert "hunter2" not in caught.value.message


def test_an_unreachable_server_is_unavailable_without_the_password() -> None:
    broker = PostgresRoleBroker(
        "postgresql://postgres@127.0.0.1:1/test", password="hunter2", connect_timeout=2
    )
    assert "hunter2" not in repr(broker)
    with pytest.raises(Unavailable) as caught:
        broker.revoke(broker.new_handle(task_record()))
    assert caught.value.reason == "grant.postgres"
    assert "hunter2" not in caught.value.message


# the lease manager over the real broker


def test_task_end_revokes_and_a_failed_revocation_is_retried(db: Fixture) -> None:
    stores = MemoryStores()
    clock = FixedClock(time.time())
    good = PostgresRoleBroker(SHARED_URL, role_prefix=db.prefix)
    manager = LeaseManager(
        leases=stores,
        tasks=stores,
        brokers={"postgres": good},
        audit=AuditLog(stores, clock),
        clock=clock,
    )
    task = task_record()
    stores.add_task(task)
    issued = manager.issue(
        task, GrantTemplate("postgres", role=db.reader), actor=Actor("workload", task.owner)
    )
    user = issued.secret.values["user"]
    assert role_row(db.admin, user) is not None
    # PostgreSQL is unreachable when the task ends: the lease fails, visibly
    manager.brokers["postgres"] = PostgresRoleBroker(
        "postgresql://postgres@127.0.0.1:1/test", role_prefix=db.prefix, connect_timeout=2
    )
    ended = stores.end_task(task.task_id, TaskState.COMPLETED, clock.now(), "completed")
    assert ended is not None
    manager.on_ended([ended])
    failed = manager.list(state=LeaseState.FAILED)
    assert [x.lease_id for x in failed] == [issued.lease.lease_id]
    assert role_row(db.admin, user) is not None
    # it comes back: the retry drops the role
    manager.brokers["postgres"] = good
    result = manager.retry_failed(force=True)
    assert [x.lease_id for x in result.revoked] == [issued.lease.lease_id]
    assert role_row(db.admin, user) is None
    assert issued.secret.values["password"] not in "".join(
        r.body for r in stores.read_events(0, 1000)
    )


# password authentication, as in production (scram-sha-256 in pg_hba.conf)


@pytest.fixture(scope="module")
def cluster() -> Iterator[ScramCluster]:
    started = ScramCluster()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def scram_broker(cluster: ScramCluster) -> Iterator[PostgresRoleBroker]:
    with cluster.admin() as admin:
        admin.execute("DROP ROLE IF EXISTS reader")
        admin.execute("CREATE ROLE reader NOLOGIN")
        admin.execute("CREATE TABLE IF NOT EXISTS reports (quarter text)")
        admin.execute("GRANT SELECT ON reports TO reader")
    yield PostgresRoleBroker(cluster.admin_url, agent_url=cluster.agent_url)
    with cluster.admin() as admin:
        for (role,) in admin.execute("SELECT rolname FROM pg_roles WHERE rolname LIKE 'zl\\_%'"):
            admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(str(role))))
        admin.execute("DROP TABLE reports")
        admin.execute("DROP ROLE reader")


def test_password_login_works_during_the_task_and_fails_after_completion(
    scram_broker: PostgresRoleBroker,
) -> None:
    secret = grant(scram_broker, "reader")
    assert secret.values["host"] == "127.0.0.1"
    with psycopg.connect(secret.values["dsn"]) as conn:  # the twin: during the task
        assert conn.execute("SELECT count(*) FROM reports").fetchone() == (0,)
    scram_broker.revoke(secret.values["user"])
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(secret.values["dsn"], connect_timeout=3)


def test_a_wrong_password_is_refused(scram_broker: PostgresRoleBroker) -> None:
    secret = grant(scram_broker, "reader")
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(
            secret.values["dsn"].replace(secret.values["password"], "guess"), connect_timeout=3
        )


def test_the_role_expires_with_its_task_even_before_it_is_dropped(
    scram_broker: PostgresRoleBroker,
) -> None:
    task = task_record()
    template = parse_template("postgres", {"role": "reader"})
    handle = scram_broker.new_handle(task)
    # a task that ended a second ago and whose role was never dropped (a crash)
    secret = scram_broker.issue(handle, task, template, time.time() - 1)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(secret.values["dsn"], connect_timeout=3)

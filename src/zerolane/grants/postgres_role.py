"""PostgreSQL role per task: a login role that lives as long as the task, then is dropped.

``issue`` creates, in one transaction::

    CREATE ROLE zl_<random> WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION
        NOBYPASSRLS INHERIT CONNECTION LIMIT <n> PASSWORD '<SCRAM verifier>'
        VALID UNTIL '<task end>';
    GRANT <template role> TO zl_<random>;

The template role is admin-created and checked before it is granted: it must exist,
be NOLOGIN, and neither it nor any role it belongs to may be a superuser or hold
CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS or a server-file/program role (membership
lets ``SET ROLE`` reach those). The password is random, hashed to a SCRAM verifier on
this side (so the server's statement log never sees it) and returned once.

``revoke`` is idempotent: ``ALTER ROLE .. NOLOGIN`` (refuses new sessions at once,
whatever pg_hba says), makes the admin a member of the role (a CREATEROLE admin needs
its privileges), terminates the role's sessions, then ``REASSIGN OWNED`` to the template
role (never to the admin: a view or ``SECURITY DEFINER`` function runs as its owner) /
``DROP OWNED`` / ``DROP ROLE`` in one transaction. A role already gone is done.

Every identifier and literal goes through :mod:`psycopg.sql`; nothing untrusted is
formatted into SQL. psycopg is this module's only database import (no SQL framework).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Sequence

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import TupleRow

from zerolane.errors import Forbidden, InvalidInput, Unavailable
from zerolane.grants.broker import PG_ROLE, GrantSecret, GrantTemplate
from zerolane.store.records import TaskRecord

DEFAULT_PREFIX = "zl_"
DEFAULT_CONNECTION_LIMIT = 5
DEFAULT_CONNECT_TIMEOUT = 5
_PREFIX = re.compile(r"[a-z_][a-z0-9_]{0,20}")
_STATEMENT_TIMEOUT = "10s"
#: predefined roles that reach the server's files, programs or other sessions
DANGEROUS_ROLES = frozenset(
    {
        "pg_execute_server_program",
        "pg_read_server_files",
        "pg_write_server_files",
        "pg_signal_backend",
        "pg_checkpoint",
        "pg_create_subscription",
    }
)
_TEMPLATE_CLOSURE = """
WITH RECURSIVE up(oid) AS (
    SELECT oid FROM pg_roles WHERE rolname = %(role)s
    UNION
    SELECT m.roleid FROM pg_auth_members m JOIN up ON m.member = up.oid
)
SELECT r.rolname, r.rolcanlogin, r.rolsuper, r.rolcreaterole, r.rolcreatedb,
       r.rolreplication, r.rolbypassrls
FROM up JOIN pg_roles r ON r.oid = up.oid
"""

#: the roles granted to a task role by someone else (the broker grants its template)
_GRANTED_TEMPLATES = """
SELECT g.rolname
FROM pg_auth_members m
JOIN pg_roles g ON g.oid = m.roleid
JOIN pg_roles r ON r.oid = m.member
WHERE r.rolname = %(role)s AND m.grantor <> r.oid
"""


def _failure(err: psycopg.Error, what: str) -> Unavailable:
    """A PostgreSQL error as recorded: SQLSTATE and primary message, nothing else (no
    statement text, which for CREATE ROLE would hold the password verifier)."""
    diag = err.diag
    primary = diag.message_primary or str(err).strip().splitlines()[0][:200]
    state = diag.sqlstate or type(err).__name__
    return Unavailable("grant.postgres", f"{what} failed ({state}): {primary}")


class PostgresRoleBroker:
    """Implements :class:`~zerolane.grants.broker.GrantBroker` with one role per task."""

    name = "postgres"
    legacy = False

    def __init__(
        self,
        url: str,
        *,
        password: str | None = None,
        agent_url: str | None = None,
        role_prefix: str = DEFAULT_PREFIX,
        templates: Sequence[str] = (),
        connect_timeout: int = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        admin = self._parse(url, "url")
        if "password" in admin:
            raise InvalidInput(
                "grant.postgres_url",
                "the admin URL holds a password: put it in password_file or password_env",
            )
        agent = self._parse(agent_url or url, "agent_url")
        agent.pop("password", None)
        agent.pop("user", None)
        if not agent.get("dbname"):
            raise InvalidInput("grant.postgres_url", "the PostgreSQL URL must name a database")
        if not _PREFIX.fullmatch(role_prefix) or role_prefix.startswith("pg_"):
            raise InvalidInput(
                "grant.postgres_prefix", "role_prefix is 1..21 of [a-z0-9_], not pg_*"
            )
        for role in templates:
            if not PG_ROLE.fullmatch(role):
                raise InvalidInput("grant.postgres_template", f"{role!r} is not a role name")
        self._admin = make_conninfo(make_conninfo("", **admin), application_name="zerolane")
        self._password = password
        self._agent = agent
        self._prefix = role_prefix
        self._handle = re.compile(re.escape(role_prefix) + r"[0-9a-f]{20}")
        self._templates = frozenset(templates)
        self._timeout = connect_timeout

    @staticmethod
    def _parse(url: str, what: str) -> dict[str, str]:
        try:
            return {k: str(v) for k, v in conninfo_to_dict(url).items()}
        except psycopg.ProgrammingError as err:
            raise InvalidInput("grant.postgres_url", f"{what} is not a PostgreSQL URL") from err

    def __repr__(self) -> str:  # never the password
        database = self._agent.get("dbname")
        return f"PostgresRoleBroker(database={database!r}, prefix={self._prefix!r})"

    def _connect(self) -> psycopg.Connection[TupleRow]:
        conninfo = self._admin
        if self._password is not None:
            conninfo = make_conninfo(conninfo, password=self._password)
        try:
            return psycopg.connect(conninfo, autocommit=True, connect_timeout=self._timeout)
        except psycopg.Error as err:
            raise _failure(err, "connecting to PostgreSQL") from err

    def new_handle(self, task: TaskRecord) -> str:
        return self._prefix + secrets.token_hex(10)

    def issue(
        self, handle: str, task: TaskRecord, template: GrantTemplate, expires_at: float
    ) -> GrantSecret:
        if not self._handle.fullmatch(handle):
            raise InvalidInput("grant.handle", f"{handle!r} is not a role this broker makes")
        role = template.role
        if role is None:
            raise InvalidInput("grant.template", "a postgres grant names a template role")
        if self._templates and role not in self._templates:
            raise Forbidden(
                "grant.template_not_allowed",
                f"role {role!r} is not one of the configured grants.postgres.templates",
            )
        password = secrets.token_urlsafe(24)
        until = dt.datetime.fromtimestamp(expires_at, tz=dt.UTC).isoformat()
        limit = template.connection_limit or DEFAULT_CONNECTION_LIMIT
        with self._connect() as conn:
            try:
                verifier = conn.pgconn.encrypt_password(
                    password.encode(), handle.encode(), b"scram-sha-256"
                ).decode("ascii")
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("SET LOCAL statement_timeout = {}").format(
                            sql.Literal(_STATEMENT_TIMEOUT)
                        )
                    )
                    self._check_template(cur, role)
                    cur.execute(
                        sql.SQL(
                            "CREATE ROLE {} WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE "
                            "NOREPLICATION NOBYPASSRLS INHERIT CONNECTION LIMIT {} "
                            "PASSWORD {} VALID UNTIL {}"
                        ).format(
                            sql.Identifier(handle),
                            sql.Literal(limit),
                            sql.Literal(verifier),
                            sql.Literal(until),
                        )
                    )
                    cur.execute(
                        sql.SQL("GRANT {} TO {}").format(
                            sql.Identifier(role), sql.Identifier(handle)
                        )
                    )
            except psycopg.Error as err:
                raise _failure(err, f"creating role {handle}") from err
        values = {
            "host": self._agent.get("host", "localhost"),
            "port": self._agent.get("port", "5432"),
            "dbname": self._agent["dbname"],
            "user": handle,
            "password": password,
            "valid_until": until,
            "dsn": make_conninfo(make_conninfo("", **self._agent), user=handle, password=password),
        }
        return GrantSecret(values)

    def _check_template(self, cur: psycopg.Cursor[TupleRow], role: str) -> None:
        cur.execute(_TEMPLATE_CLOSURE, {"role": role})
        rows = cur.fetchall()
        if not rows:
            raise Forbidden("grant.template_missing", f"template role {role!r} does not exist")
        for name, can_login, *powers in rows:
            if name == role and can_login:
                raise Forbidden("grant.template_login", f"template role {role!r} must be NOLOGIN")
            if any(powers) or name in DANGEROUS_ROLES or str(name).startswith(self._prefix):
                raise Forbidden(
                    "grant.template_privileged",
                    f"template role {role!r} is or belongs to {name!r}, which holds powers "
                    "a task may never get (superuser, CREATEROLE, CREATEDB, REPLICATION, "
                    "BYPASSRLS, server files or programs, another task's role)",
                )

    def revoke(self, handle: str) -> None:
        if not self._handle.fullmatch(handle):
            raise InvalidInput("grant.handle", f"{handle!r} is not a role this broker makes")
        ident = sql.Identifier(handle)
        with self._connect() as conn:
            try:
                exists = conn.execute(
                    "SELECT 1 FROM pg_roles WHERE rolname = %s", (handle,)
                ).fetchone()
                if exists is None:
                    return  # already dropped
                # autocommit: no new session from here on, whatever pg_hba allows
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
                # a CREATEROLE admin that is no superuser needs the role's privileges to
                # end its sessions and to reassign or drop what it owns
                conn.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(ident))
                conn.execute(
                    "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity "
                    "WHERE usename = %s AND pid <> pg_backend_pid()",
                    (handle,),
                )
                with conn.transaction(), conn.cursor() as cur:
                    cur.execute(
                        sql.SQL("SET LOCAL statement_timeout = {}").format(
                            sql.Literal(_STATEMENT_TIMEOUT)
                        )
                    )
                    # What the role created goes to its template, never to the admin: a
                    # view or SECURITY DEFINER function runs with its owner's privileges.
                    cur.execute(_GRANTED_TEMPLATES, {"role": handle})
                    templates = [str(row[0]) for row in cur.fetchall()]
                    if len(templates) == 1:
                        cur.execute(
                            sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                                ident, sql.Identifier(templates[0])
                            )
                        )
                    cur.execute(sql.SQL("DROP OWNED BY {}").format(ident))
                    cur.execute(sql.SQL("DROP ROLE {}").format(ident))
            except psycopg.Error as err:
                raise _failure(err, f"dropping role {handle}") from err

"""The grant brokers of a deployment, built from ``[grants]`` in its configuration.

Secrets (the PostgreSQL admin password, the HMAC key, a static secret) are read here
from 0600 files or the environment, so a bad file mode or a missing variable stops
startup; none of them is ever logged.
"""

from __future__ import annotations

import os
from pathlib import Path

from zerolane.config import GrantsConfig
from zerolane.errors import InvalidInput
from zerolane.grants.base import read_private_file
from zerolane.grants.broker import GrantBroker
from zerolane.grants.hmac_keys import HmacKeyBroker
from zerolane.grants.static import StaticSecret, StaticSecretBroker
from zerolane.types import Clock


def _path(home: Path, name: str) -> Path:
    path = Path(name)
    return path if path.is_absolute() else home / path


def _password(home: Path, file: str | None, env: str | None) -> str | None:
    if file is not None:
        try:
            return read_private_file(_path(home, file)).decode("utf-8")
        except UnicodeDecodeError as err:
            raise InvalidInput("grant.file", f"{file} is not UTF-8 text") from err
    if env is not None:
        value = os.environ.get(env, "")
        if not value:
            raise InvalidInput("grant.env", f"environment variable {env} is not set or empty")
        return value
    return None


def build_brokers(config: GrantsConfig, home: Path, clock: Clock) -> dict[str, GrantBroker]:
    """Broker name -> broker, for the brokers the configuration sets up."""
    brokers: dict[str, GrantBroker] = {}
    if config.postgres is not None:
        from zerolane.grants.postgres_role import PostgresRoleBroker  # needs psycopg

        pg = config.postgres
        brokers["postgres"] = PostgresRoleBroker(
            pg.url,
            password=_password(home, pg.password_file, pg.password_env),
            agent_url=pg.agent_url,
            role_prefix=pg.role_prefix,
            templates=pg.templates,
            connect_timeout=pg.connect_timeout,
        )
    if config.hmac is not None:
        key = read_private_file(_path(home, config.hmac.key_file))
        brokers["hmac"] = HmacKeyBroker(key, ttl=config.hmac.ttl, clock=clock)
    if config.static is not None:
        st = config.static
        if st.secret_file is not None:
            secret = StaticSecret.from_file(
                _path(home, st.secret_file), header=st.header, fmt=st.format
            )
        else:
            assert st.secret_env is not None
            secret = StaticSecret.from_env(st.secret_env, header=st.header, fmt=st.format)
        brokers["static"] = StaticSecretBroker(secret)
    return brokers

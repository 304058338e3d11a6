"""Findings about a home's configuration: the static downstream secrets it injects.

A ``static`` credential (``[grants.static]`` in ``zerolane.toml``, an HTTP gateway
upstream's ``credential`` of type ``static``, an MCP gateway server's) is one secret
handed to every allowed request of every task: it never reaches the agent, but it lives
as long as nobody changes it and stands for every workload at once. Each one is a
``config.static_grant`` finding naming where the secret is kept (a file's path, an
environment variable's name), never the secret.

The configuration files are parsed at the edge (the CLI): this module receives only
:class:`StaticCredential` descriptions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from zerolane.posture.findings import Finding, Severity

STATIC_GRANT = "config.static_grant"


@dataclass(frozen=True, slots=True)
class StaticCredential:
    """A static secret a configuration file injects: the file (``config``), where in it
    (``section``: ``[grants.static]``, ``upstreams[0] (billing).credential``) and where
    the secret is kept: exactly one of ``secret_file`` and ``secret_env``."""

    config: str
    section: str
    secret_file: str | None = None
    secret_env: str | None = None

    def __post_init__(self) -> None:
        if (self.secret_file is None) == (self.secret_env is None):
            raise ValueError("a static credential is kept in a file or an environment variable")

    @property
    def location(self) -> str:
        if self.secret_file is not None:
            return f"file {self.secret_file}"
        return f"environment variable {self.secret_env}"


def static_grant_finding(credential: StaticCredential) -> Finding:
    """The finding about one static credential."""
    # NHI7: it lives until someone changes it by hand; NHI9: every task of every
    # workload is handed the same secret; NHI2 too when it sits in the environment,
    # which child processes inherit and /proc/<pid>/environ and crash reports show
    nhi = ["NHI7:2025", "NHI9:2025"]
    if credential.secret_env is not None:
        nhi.append("NHI2:2025")
    return Finding(
        rule=STATIC_GRANT,
        title="Static downstream secret",
        severity=Severity.MEDIUM,
        nhi=tuple(sorted(nhi)),
        message=f"{credential.config} {credential.section} injects one static secret (kept "
        f"in {credential.location}) into every allowed request of every task",
        remedy="replace it with a grant broker that mints a credential per task and "
        "revokes it when the task ends: per-task HMAC API keys (credential type hmac, "
        "[grants.hmac]) or a PostgreSQL role per task ([grants.postgres]); see "
        "docs/grants.md",
        subject=f"{credential.config} {credential.section}",
        details={
            "config": credential.config,
            "section": credential.section,
            "secret_file": credential.secret_file,
            "secret_env": credential.secret_env,
        },
    )


def config_findings(credentials: Iterable[StaticCredential]) -> list[Finding]:
    """One ``config.static_grant`` finding per static credential."""
    return [static_grant_finding(credential) for credential in credentials]

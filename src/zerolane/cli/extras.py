"""Which extra installs the module a command is missing.

``pip install zerolane`` is the agent side: the SDK (``zerolane.sdk``, its in-process
guard over a remote decider) and this command line's shell. The rest comes with extras
(pyproject.toml's ``[project.optional-dependencies]``):

``server``
    the control plane, the HTTP gateway and forward-auth: FastAPI and Starlette,
    uvicorn (httptools, uvloop), aiohttp, the Cedar engine, YAML and TOML files, the
    ``spiffe`` ID parser, Prometheus metrics;
``mcp``
    the MCP SDK: the MCP gateway (with ``server``), and the demo's MCP client;
``postgres``
    psycopg, for the PostgreSQL grant broker;
``posture``
    Yelp's detect-secrets, for ``zerolane posture scan``;
``all``
    all four (``make install`` installs it).

A command that imports a module of an extra not installed ends as one line naming the
extra to install (:func:`missing_extra`), not a traceback.
"""

from __future__ import annotations

from collections.abc import Mapping

#: the top-level modules each extra brings (its distributions' and what they pull that
#: zerolane imports itself); tests/cli/test_extras.py checks it against pyproject.toml
MODULES: Mapping[str, frozenset[str]] = {
    "server": frozenset(
        {
            "fastapi",
            "starlette",
            "uvicorn",
            "httptools",
            "uvloop",
            "aiohttp",
            "yarl",
            "cedarpy",
            "yaml",
            "tomli_w",
            "spiffe",
            "prometheus_client",
        }
    ),
    "mcp": frozenset({"mcp", "mcp_types"}),
    "postgres": frozenset({"psycopg", "psycopg_binary"}),
    "posture": frozenset({"detect_secrets"}),
}


def extra_of(module: str | None) -> str | None:
    """The extra that installs ``module`` (a dotted name: its top level counts)."""
    if not module:
        return None
    top = module.partition(".")[0]
    return next((extra for extra, names in MODULES.items() if top in names), None)


def missing_extra(err: ModuleNotFoundError) -> tuple[str, str] | None:
    """The reason and message for a module an extra installs; None for any other."""
    extra = extra_of(err.name)
    if extra is None:
        return None
    top = (err.name or "").partition(".")[0]
    return (
        "cli.extra_missing",
        f"this command needs {top}, which the {extra!r} extra installs: "
        f"pip install 'zerolane[{extra}]' (or 'zerolane[all]')",
    )

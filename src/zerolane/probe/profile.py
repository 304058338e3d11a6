"""What the probe knows about its target: where it is, one request the credential may
make, one it may not, and the MCP endpoint with a tool of each kind.

The scenarios need both halves of every pair: the allowed request is the legitimate
twin of every attack, the forbidden one is what a path or method trick tries to reach.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit


@dataclass(frozen=True)
class Call:
    """One HTTP request of the target: a method, a path (with its query) and a body."""

    method: str
    path: str
    body: bytes = b""
    headers: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not self.path.startswith("/"):
            raise ValueError(f"a path starts with '/': {self.path!r}")


@dataclass(frozen=True)
class McpProfile:
    """An MCP endpoint (streamable HTTP) and a tool the credential may call (with
    arguments that work) and one it may not."""

    path: str
    allowed_tool: str
    forbidden_tool: str
    allowed_arguments: dict[str, Any] = field(default_factory=dict)
    forbidden_arguments: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TargetProfile:
    """The target: its base URL, the allowed and forbidden requests, its MCP endpoint.

    ``forbidden_path`` (optional): a request on another path the credential may not
    make, for the path normalization scenarios (``path.*``) when ``forbidden`` differs
    from ``allowed`` by its method only (``DELETE`` of the allowed ``GET``'s path: a
    path trick has nothing to reach). Its method may be the allowed one's. Without it
    the path scenarios aim at ``forbidden`` when its path differs from the allowed
    one's, and are ``not_applicable`` otherwise.
    """

    url: str
    allowed: Call
    forbidden: Call | None = None
    mcp: McpProfile | None = None
    #: allowed requests whose upstream answers with the headers that reached it (like
    #: httpbin's ``/headers``): show whether the agent's token is passed upstream. One
    #: route or several (each route of a gateway may have an upstream and a credential
    #: setting of its own); :attr:`echoes` is them as a tuple
    echo: Call | tuple[Call, ...] | None = None
    forbidden_path: Call | None = None

    @property
    def echoes(self) -> tuple[Call, ...]:
        if self.echo is None:
            return ()
        return (self.echo,) if isinstance(self.echo, Call) else self.echo

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"the target is an http(s) URL: {self.url!r}")
        if "@" in parts.netloc:  # it would reach every report (and go as Basic auth)
            raise ValueError("the target URL holds no user or password (user:secret@host)")

    def absolute(self, path: str) -> str:
        """``path`` on the target (kept as given: no dot segments are resolved)."""
        base = self.url.rstrip("/")
        return base + path if path.startswith("/") else urljoin(base + "/", path)

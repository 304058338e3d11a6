"""How an upstream tool maps onto a decision: action, resource, destination, sensitivity.

A tool ``read_report`` of server ``reports`` is action ``mcp:reports/read_report`` on
resource ``mcp/reports/read_report``, sent to the server's destination label. Its
sensitivity is the configured per-tool value, else the server's default raised by the
tool's annotations: a tool that is not declared read-only and is (or by the MCP
defaults may be) destructive is at least the server's ``destructive_sensitivity``.
Annotations come from the upstream, so they can only raise a sensitivity, never lower
it below the server's default. The policies also see the call itself, as the optional
``context.request.mcp`` record (:meth:`ToolRoute.mcp_facts`): server, tool, annotations
and the flattened arguments.

Resources and prompts are decided the same way. Reading resource ``file:///a/b`` of
server ``docs`` is action ``mcp:docs/resources/read`` on resource
``mcp/docs/resources/file/-/a/b`` (:func:`resource_name`), at the sensitivity of the
server's first ``resources`` rule whose glob matches the URI, else its default. Getting
prompt ``summarize`` is action ``mcp:docs/prompts/get`` on ``mcp/docs/prompts/summarize``,
at its configured sensitivity, else the server's default. Tool names never hold a
``/``, so these actions never collide with a tool's. Both are read-only for the
policies (``read_only`` true, ``destructive`` false).

A route in shadow mode (its tool's or prompt's ``mode``, else its server's) carries the
name its decisions give it (:attr:`~zerolane.decision.DecideInput.shadow`):
``tool:<server>/<tool>``, ``prompt:<server>/<prompt>``, ``resources:<server>``; what the
policies deny of it is relayed as a shadow allow, audited as a would-deny.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from mcp_types import Prompt, Tool, ToolAnnotations

from zerolane.gateway.mcp.config import MAX_URI, TOOL_NAME, ToolConfig, UpstreamConfig
from zerolane.policy.context import McpFacts
from zerolane.types import Sensitivity


@dataclass(frozen=True, slots=True)
class ToolRoute:
    """One upstream tool as the gateway exposes and decides it."""

    server: str
    tool: Tool  # as the upstream listed it
    exposed: str  # the name agents see (the server's prefix + the tool's name)
    destination: str
    sensitivity: Sensitivity
    #: in shadow mode, the name its decisions give it (``tool:<server>/<tool>``); None:
    #: enforced
    shadow: str | None = None

    @property
    def action(self) -> str:
        return f"mcp:{self.server}/{self.tool.name}"

    @property
    def resource(self) -> str:
        return f"mcp/{self.server}/{self.tool.name}"

    @property
    def read_only(self) -> bool:
        annotations = self.tool.annotations
        return bool(annotations and annotations.read_only_hint)

    @property
    def destructive(self) -> bool:
        return _destructive(self.tool.annotations)

    def mcp_facts(self, arguments: Mapping[str, object] | None = None) -> McpFacts:
        """``context.request.mcp`` for a call of this tool with ``arguments``."""
        return McpFacts.of_call(
            self.server,
            self.tool.name,
            read_only=self.read_only,
            destructive=self.destructive,
            arguments=arguments,
        )

    def listed(self) -> Tool:
        """The tool as the gateway lists it: renamed, everything else as upstream."""
        return self.tool.model_copy(update={"name": self.exposed})


def _destructive(annotations: ToolAnnotations | None) -> bool:
    """MCP defaults: not read-only unless said so; destructive unless said otherwise."""
    if annotations is None:
        return True
    if annotations.read_only_hint:
        return False
    return annotations.destructive_hint is not False


def shadow_name(server: UpstreamConfig, own: ToolConfig | None, name: str) -> str | None:
    """``name`` when the item is in shadow mode (``own`` settings' ``mode``, else its
    server's), else None (enforced)."""
    mode = own.mode if own is not None and own.mode is not None else server.mode
    return name if mode == "shadow" else None


def tool_sensitivity(server: UpstreamConfig, tool: Tool) -> Sensitivity:
    """Per-tool override, else the annotation-informed default, else the server default."""
    override = server.tools.get(tool.name)
    if override is not None and override.sensitivity is not None:
        return override.sensitivity
    if _destructive(tool.annotations):
        return max(server.default_sensitivity, server.destructive_sensitivity)
    return server.default_sensitivity


def route_for(server: UpstreamConfig, tool: Tool) -> ToolRoute | None:
    """The route of ``tool``, or None for a name that cannot map onto one resource."""
    if not TOOL_NAME.fullmatch(tool.name):
        return None
    return ToolRoute(
        server=server.name,
        tool=tool,
        exposed=server.prefix + tool.name,
        destination=server.destination,
        sensitivity=tool_sensitivity(server, tool),
        shadow=shadow_name(server, server.tools.get(tool.name), f"tool:{server.name}/{tool.name}"),
    )


#: RFC 3986 scheme, then the rest: printable ASCII, no space (_UNSAFE refuses a few more)
_URI = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):([\x21-\x7e]+)")
_UNSAFE = frozenset("%*?#\\")
#: stands for an empty authority (``file:///a``), which a segment cannot be
EMPTY_AUTHORITY = "-"
READ_RESOURCE = "resources/read"
GET_PROMPT = "prompts/get"


def resource_name(uri: str) -> str | None:
    """The resource segments a URI is decided as, or None when it cannot map safely.

    ``scheme://authority/p/a/t/h`` becomes ``scheme/authority/p/a/t/h``, an empty
    authority written ``-`` (``file:///a/b`` is ``file/-/a/b``, ``file://a/b`` is
    ``file/a/b``); ``scheme:opaque`` becomes ``scheme:/`` + the opaque part split on
    ``/`` (``urn:x:y`` is ``urn:/x:y``). No decoding, no resolving. Refused, so that
    one name never stands for two URIs and no URI dodges a pattern: anything but
    printable ASCII (spaces included),
    ``%``, ``*``, ``\\``, a query or fragment (``?``, ``#``), an empty segment (a
    trailing ``/`` included), a ``.`` or ``..`` segment, an authority that is itself
    ``-``, user info (``@`` in the authority), and more than :data:`MAX_URI`
    characters. The scheme and authority are lower-cased and ``file://localhost/`` is
    ``file:///`` (:func:`normalized_uri`). Template URIs (RFC 6570, ``file:///{path}``)
    map the same way, their braces as literal characters.
    """
    normal = normalized_uri(uri)
    if normal is None:
        return None
    scheme, _, rest = normal.partition(":")
    if rest.startswith("//"):
        authority, slash, path = rest[2:].partition("/")
        if authority == EMPTY_AUTHORITY or not (authority or slash):
            return None
        segments = [scheme, authority or EMPTY_AUTHORITY, *([path] if slash else [])]
        name = "/".join(segments)
    else:
        name = f"{scheme}:/{rest}"
    if any(segment in ("", ".", "..") for segment in name.split("/")):
        return None
    return name


def normalized_uri(uri: str) -> str | None:
    """``uri`` as it is decided: the scheme and the authority lower-cased (hosts are
    case-insensitive), ``file://localhost/`` written ``file:///`` (RFC 8089: the same
    file); None for a URI that cannot map safely (see :func:`resource_name`), or one
    with user info (``user@host``: two spellings of one host)."""
    if len(uri) > MAX_URI:
        return None
    parts = _URI.fullmatch(uri)
    if parts is None or not _UNSAFE.isdisjoint(uri):
        return None
    scheme, rest = parts[1].lower(), parts[2]
    if not rest.startswith("//"):
        return f"{scheme}:{rest}"
    authority, slash, path = rest[2:].partition("/")
    authority = authority.lower()
    if "@" in authority:
        return None
    if scheme == "file" and authority == "localhost":
        authority = ""
    return f"{scheme}://{authority}{slash}{path}"


@dataclass(frozen=True, slots=True)
class ResourceRoute:
    """One resource URI of an upstream server, as the gateway decides reading it."""

    server: str
    uri: str  # as the client asked for it (and as it goes upstream)
    destination: str
    sensitivity: Sensitivity
    name: str  # resource_name(uri)
    #: in shadow mode (its server's), ``resources:<server>``; None: enforced
    shadow: str | None = None

    @property
    def action(self) -> str:
        return f"mcp:{self.server}/{READ_RESOURCE}"

    @property
    def resource(self) -> str:
        return f"mcp/{self.server}/resources/{self.name}"

    def mcp_facts(self, *, method: str = READ_RESOURCE) -> McpFacts:
        """``context.request.mcp`` for reading this resource (or for ``method``, such as
        ``resources/subscribe`` or ``completion/complete``, decided as that read)."""
        return McpFacts.of_call(
            self.server, "", read_only=True, destructive=False, method=method, uri=self.uri
        )


def resource_sensitivity(server: UpstreamConfig, uri: str) -> Sensitivity:
    """The first rule matching ``uri`` (as given, or normalized: :func:`normalized_uri`),
    else the server's default."""
    normal = normalized_uri(uri)
    candidates = {uri, _lower_scheme(uri), *([normal] if normal else [])}
    for rule in server.resources:
        if any(rule.matches(candidate) for candidate in candidates):
            return rule.sensitivity
    return server.default_sensitivity


def _lower_scheme(uri: str) -> str:
    scheme, colon, rest = uri.partition(":")
    return scheme.lower() + colon + rest


def resource_route(server: UpstreamConfig, uri: str) -> ResourceRoute | None:
    """The route of reading ``uri``, or None for a URI that cannot map safely."""
    name = resource_name(uri)
    if name is None:
        return None
    return ResourceRoute(
        server=server.name,
        uri=uri,
        destination=server.destination,
        sensitivity=resource_sensitivity(server, uri),
        name=name,
        shadow=shadow_name(server, None, f"resources:{server.name}"),
    )


@dataclass(frozen=True, slots=True)
class PromptRoute:
    """One upstream prompt as the gateway exposes and decides it."""

    server: str
    prompt: Prompt  # as the upstream listed it
    exposed: str  # the name agents see (the server's prefix + the prompt's name)
    destination: str
    sensitivity: Sensitivity
    #: in shadow mode, ``prompt:<server>/<prompt>``; None: enforced
    shadow: str | None = None

    @property
    def action(self) -> str:
        return f"mcp:{self.server}/{GET_PROMPT}"

    @property
    def resource(self) -> str:
        return f"mcp/{self.server}/prompts/{self.prompt.name}"

    def mcp_facts(
        self, arguments: Mapping[str, object] | None = None, *, method: str = GET_PROMPT
    ) -> McpFacts:
        """``context.request.mcp`` for getting this prompt with ``arguments`` (or for
        ``method``, such as ``completion/complete``, decided as that get)."""
        return McpFacts.of_call(
            self.server,
            self.prompt.name,
            read_only=True,
            destructive=False,
            arguments=arguments,
            method=method,
        )

    def listed(self) -> Prompt:
        """The prompt as the gateway lists it: renamed, everything else as upstream."""
        return self.prompt.model_copy(update={"name": self.exposed})


def prompt_sensitivity(server: UpstreamConfig, prompt: Prompt) -> Sensitivity:
    """Per-prompt override, else the server default."""
    override = server.prompts.get(prompt.name)
    if override is not None and override.sensitivity is not None:
        return override.sensitivity
    return server.default_sensitivity


def prompt_route(server: UpstreamConfig, prompt: Prompt) -> PromptRoute | None:
    """The route of ``prompt``, or None for a name that cannot map onto one resource."""
    if not TOOL_NAME.fullmatch(prompt.name):
        return None
    return PromptRoute(
        server=server.name,
        prompt=prompt,
        exposed=server.prefix + prompt.name,
        destination=server.destination,
        sensitivity=prompt_sensitivity(server, prompt),
        shadow=shadow_name(
            server, server.prompts.get(prompt.name), f"prompt:{server.name}/{prompt.name}"
        ),
    )

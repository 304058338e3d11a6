"""In-process guard: every call of a Python tool function is decided before it runs.

    @guard("read", "files/{path}", sensitivity="internal")
    def read_file(path: str) -> str: ...

The task's credentials come from a context the agent runtime sets around tool
execution (:func:`task_context`, or :func:`zerolane.sdk.guard.guard_context`); the
decision is made in-process (:class:`EmbeddedDecider`) or by the control plane
(:class:`RemoteDecider`). A deny raises :class:`ToolDenied` and the function is not
called; so does a missing task, an unsafe resource or an unreachable decider. Its
``reason``, ``reasons``, ``decision_id`` and ``status`` are what the other enforcement
points answer for the same refusal (:mod:`zerolane.gateway.edge.http`): 401 for a
credential, 403 for a deny, 503 when the decision failed closed.

Each guarded call is decided as ``POST https://inproc.invalid/<destination>/<action>``
(each part percent-encoded): the DPoP proof is signed for that method and URL (``.invalid``
is a reserved name, RFC 2606, so the URL can never reach a real host).
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import json
import re
import string
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from typing import Any, ParamSpec, Protocol, TypeGuard, TypeVar, cast, runtime_checkable
from urllib.parse import quote

import httpx

from zerolane.decision import DecideInput, Decision, Shadow, arguments_digest
from zerolane.errors import Refusal, Unavailable, ZerolaneError
from zerolane.gateway.edge.http import decision_status, refusal_of_status, status_of

INPROC_ORIGIN = "https://inproc.invalid"
METHOD = "POST"
DEFAULT_TIMEOUT = 5.0
MAX_RESOURCE_CHARS = 1024
_SEGMENT = re.compile(r"[\x21-\x7e]+")  # printable ASCII, no space
_UNSAFE = ("\\", "%", "*")
_INVALID = status_of(Refusal.INVALID)

P = ParamSpec("P")
R = TypeVar("R")
#: signs a DPoP proof for ``(method, url)`` with the task holder's key
ProofSigner = Callable[[str, str], str]
ResourceSpec = str | Callable[..., str]


def inproc_url(destination: str, action: str) -> str:
    """The URL a guarded call is decided (and its DPoP proof signed) for."""
    return f"{INPROC_ORIGIN}/{quote(destination, safe='')}/{quote(action, safe='')}"


class ToolDenied(PermissionError):
    """A guarded tool call was refused; the function was not called. ``status``: what
    an HTTP enforcement point would have answered for the same refusal."""

    def __init__(
        self,
        reason: str,
        reasons: Sequence[str] = (),
        decision_id: str | None = None,
        status: int = 403,
        approval_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.reasons = tuple(reasons) or (reason,)
        self.decision_id = decision_id
        self.status = status
        #: a deny ``approval.required``: the approval to wait for, then call again
        self.approval_id = approval_id
        suffix = f" (decision {decision_id})" if decision_id else ""
        super().__init__(f"zerolane denied the call: {', '.join(self.reasons)}{suffix}")

    def __reduce__(self) -> tuple[Any, ...]:
        args = (self.reason, self.reasons, self.decision_id, self.status, self.approval_id)
        return (type(self), args)


class RequestDecider(Protocol):
    """Decides one request (:class:`~zerolane.tasks.decisions.Decider` is one)."""

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision: ...


@runtime_checkable
class LoopDecider(Protocol):
    """A decider that can decide on an event loop without blocking it
    (:meth:`~zerolane.tasks.decisions.Decider.decide_async`)."""

    async def decide_async(
        self, token: str, proof: str | None, request: DecideInput
    ) -> Decision: ...


async def decide_on_loop(
    decider: RequestDecider, token: str, proof: str | None, request: DecideInput
) -> Decision:
    """Decide from a coroutine: on the loop when the decider can do so without blocking
    it, else on a worker thread (a decision writes its audit event durably)."""
    if isinstance(decider, LoopDecider):
        return await decider.decide_async(token, proof, request)
    return await asyncio.to_thread(decider.decide, token, proof, request)


class InprocDecider(RequestDecider, Protocol):
    """A decider usable from sync and async tool functions."""

    async def adecide(self, token: str, proof: str | None, request: DecideInput) -> Decision: ...


class EmbeddedDecider:
    """Decides in this process with a :class:`~zerolane.tasks.decisions.Decider`."""

    def __init__(self, decider: RequestDecider, audience: str | None = None) -> None:
        self._decider = decider
        self._audience = audience

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        return self._decider.decide(token, proof, self._addressed(request))

    async def adecide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        return await decide_on_loop(self._decider, token, proof, self._addressed(request))

    def _addressed(self, request: DecideInput) -> DecideInput:
        """``request`` with this guard's audience, unless it names one."""
        if request.audience is None and self._audience is not None:
            return replace(request, audience=self._audience)
        return request


def decider_headers(credential: str | None) -> dict[str, str]:
    """The headers with which an enforcement point asks ``POST /v1/decide``: its
    credential (``zlep_...``); without one the control plane refuses to decide."""
    return {"Authorization": f"Bearer {credential}"} if credential else {}


class RemoteDecider:
    """Decides through the control plane's ``POST /v1/decide`` (httpx; not a hot path),
    as the enforcement point whose ``credential`` it holds (register the guard's URLs,
    ``https://inproc.invalid/...``, with ``zerolane enforcement-point add``).

    Without a client given, each call opens and closes its own.
    """

    def __init__(
        self,
        base_url: str,
        audience: str | None = None,
        *,
        credential: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = base_url.rstrip("/") + "/v1/decide"
        self._headers = decider_headers(credential)
        self._audience = audience
        self._timeout = timeout
        self._client = client
        self._async_client = async_client

    def _body(self, token: str, proof: str | None, request: DecideInput) -> dict[str, Any]:
        fields = {
            "method": request.method,
            "url": request.url,
            "action": request.action,
            "resource": request.resource,
            "destination": request.destination,
            "sensitivity": request.sensitivity,
            "digest": request.digest,
            "shadow": request.shadow,
        }
        body: dict[str, Any] = {
            "token": token,
            "request": {k: v for k, v in fields.items() if v is not None},
        }
        if proof is not None:
            body["dpop"] = proof
        audience = request.audience or self._audience
        if audience is not None:
            body["audience"] = audience
        return body

    def decide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        body = self._body(token, proof, request)
        try:
            if self._client is not None:
                return decision_of(self._client.post(self.url, json=body, headers=self._headers))
            with httpx.Client(timeout=self._timeout) as client:
                return decision_of(client.post(self.url, json=body, headers=self._headers))
        except httpx.HTTPError as err:
            raise Unavailable("decide.unavailable", f"{self.url}: {err}") from err

    async def adecide(self, token: str, proof: str | None, request: DecideInput) -> Decision:
        body = self._body(token, proof, request)
        try:
            if self._async_client is not None:
                response = await self._async_client.post(self.url, json=body, headers=self._headers)
                return decision_of(response)
            async with httpx.AsyncClient(timeout=self._timeout) as client:
                return decision_of(await client.post(self.url, json=body, headers=self._headers))
        except httpx.HTTPError as err:
            raise Unavailable("decide.unavailable", f"{self.url}: {err}") from err


def decision_of(response: httpx.Response) -> Decision:
    """A ``/v1/decide`` answer as a :class:`Decision`; anything unexpected is an error."""
    try:
        body = response.json() if response.status_code == 200 else None
    except ValueError:
        body = None
    if response.status_code != 200:
        error = _error_of(response)
        if error is not None:  # refused to decide (e.g. enforcement_point.credential)
            raise Unavailable(*error)
    if not isinstance(body, dict) or body.get("decision") not in ("allow", "deny", "shadow"):
        raise Unavailable("decide.response", f"/v1/decide answered {response.status_code}")
    reasons, policies = body.get("reasons"), body.get("policies")
    task_id, decision_id, status = body.get("task_id"), body.get("decision_id"), body.get("status")
    if not (
        _strings(reasons)
        and _strings(policies)
        and isinstance(decision_id, str)
        and isinstance(status, int)
        and (task_id is None or isinstance(task_id, str))
    ):
        raise Unavailable("decide.response", "/v1/decide answered an unexpected body")
    allowed = body["decision"] != "deny"
    refusal = refusal_of_status(status)
    if allowed != (refusal is None):
        raise Unavailable("decide.response", "/v1/decide answered a status its decision denies")
    approval_id = body.get("approval_id")
    if approval_id is not None and not isinstance(approval_id, str):
        raise Unavailable("decide.response", "/v1/decide answered an unexpected approval_id")
    return Decision(
        decision_id,
        allowed,
        tuple(reasons),
        tuple(policies),
        task_id,
        refusal,
        approval_id=approval_id,
        shadow=_shadow_of(body) if body["decision"] == "shadow" else None,
    )


def _shadow_of(body: dict[str, Any]) -> Shadow:
    """What a ``shadow`` answer says enforcement would have denied, and which mode let it
    through: both named, else the answer is not one (never read as a plain allow)."""
    reasons, modes = body.get("would_deny"), body.get("shadow")
    if not (_strings(reasons) and reasons and _strings(modes) and modes):
        raise Unavailable("decide.response", "/v1/decide answered shadow without its reasons")
    return Shadow(tuple(reasons), tuple(modes))


def _error_of(response: httpx.Response) -> tuple[str, str] | None:
    """The ``reason`` and ``message`` of an error answer, when it has them."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    reason, message = body.get("reason"), body.get("message", body.get("error"))
    if not isinstance(reason, str) or not isinstance(message, str):
        return None
    return reason[:128], f"/v1/decide answered {response.status_code}: {message[:512]}"


def _strings(value: object) -> TypeGuard[list[str]]:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


@dataclass(frozen=True, slots=True)
class TaskCredentials:
    """What a guarded call decides with: the task token, a proof signer, a decider."""

    token: str = field(repr=False)  # a repr (a log line, a traceback) never shows it
    sign: ProofSigner
    decider: InprocDecider | None = None


_CURRENT: ContextVar[TaskCredentials | None] = ContextVar("zerolane_task", default=None)


@contextmanager
def task_context(
    token: str, proof_signer: ProofSigner, *, decider: InprocDecider | None = None
) -> Iterator[TaskCredentials]:
    """Run guarded tools under this task (``decider``: unless the guard names one)."""
    credentials = TaskCredentials(token, proof_signer, decider)
    reset = _CURRENT.set(credentials)
    try:
        yield credentials
    finally:
        _CURRENT.reset(reset)


def current_task() -> TaskCredentials | None:
    """The task credentials guarded calls in this context decide with, if any."""
    return _CURRENT.get()


def safe_resource(resource: str) -> bool:
    """``/``-separated printable-ASCII segments; no empty, ``.`` or ``..`` segment and
    no ``\\``, ``%`` or ``*`` (arguments come from the agent: no traversal, no decoding)."""
    if not resource or len(resource) > MAX_RESOURCE_CHARS:
        return False
    return all(
        _SEGMENT.fullmatch(segment)
        and segment not in (".", "..")
        and not any(bad in segment for bad in _UNSAFE)
        for segment in resource.split("/")
    )


def _renderer(resource: ResourceSpec, signature: inspect.Signature) -> Callable[..., str]:
    """A function of the bound arguments giving the resource; templates checked now."""
    if callable(resource):
        spec = resource

        def call(bound: inspect.BoundArguments) -> str:
            return spec(*bound.args, **bound.kwargs)

        return call
    names = {
        re.split(r"[.\[]", field, maxsplit=1)[0]
        for _, field, _, _ in string.Formatter().parse(resource)
        if field is not None
    }
    unknown = sorted(names - set(signature.parameters))
    if unknown:
        raise ValueError(f"resource template {resource!r} names no parameter {unknown}")
    template = resource

    def fill(bound: inspect.BoundArguments) -> str:
        return template.format_map(bound.arguments)

    return fill


class _Gate:
    """What a guarded function checks before each call."""

    def __init__(
        self,
        fn: Callable[..., Any],
        action: str,
        resource: ResourceSpec,
        sensitivity: str | None,
        destination: str,
        decider: InprocDecider | None,
    ) -> None:
        self.signature = inspect.signature(fn)
        self.render = _renderer(resource, self.signature)
        self.function = getattr(fn, "__qualname__", None) or repr(fn)
        self.action = action
        self.sensitivity = sensitivity
        self.destination = destination
        self.url = inproc_url(destination, action)
        self.decider = decider

    def _resource(self, bound: inspect.BoundArguments) -> str:
        try:
            resource = self.render(bound)
        except Exception as err:
            raise ToolDenied("guard.resource", status=_INVALID) from err
        if not isinstance(resource, str) or not safe_resource(resource):
            raise ToolDenied("guard.resource", status=_INVALID)  # as an unsafe path is
        return resource

    def prepare(
        self, args: tuple[Any, ...], kwargs: Mapping[str, Any]
    ) -> tuple[InprocDecider, str, str, DecideInput]:
        """The decider, token, proof and request of one call (or :class:`ToolDenied`)."""
        bound = self.signature.bind(*args, **kwargs)  # a wrong call is a TypeError, as usual
        bound.apply_defaults()
        credentials = _CURRENT.get()
        if credentials is None:
            raise ToolDenied("guard.no_task", status=status_of(Refusal.UNAUTHENTICATED))
        decider = self.decider or credentials.decider
        if decider is None:
            raise ToolDenied("guard.no_decider", status=status_of(Refusal.UNAVAILABLE))
        request = DecideInput(
            method=METHOD,
            url=self.url,
            action=self.action,
            resource=self._resource(bound),
            destination=self.destination,
            sensitivity=self.sensitivity,
            digest=_digest(bound),
            preview=lambda: _preview(self.function, bound),
        )
        try:
            proof = credentials.sign(METHOD, self.url)
        except Exception as err:
            raise ToolDenied("guard.proof", status=status_of(Refusal.UNAUTHENTICATED)) from err
        return decider, credentials.token, proof, request

    def check(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Decision:
        decider, token, proof, request = self.prepare(args, kwargs)
        try:
            decision = decider.decide(token, proof, request)
        except Exception as err:
            raise _unavailable(err) from err
        return _allowed(decision)

    async def acheck(self, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> Decision:
        decider, token, proof, request = self.prepare(args, kwargs)
        try:
            decision = await decider.adecide(token, proof, request)
        except Exception as err:
            raise _unavailable(err) from err
        return _allowed(decision)


def _unavailable(err: Exception) -> ToolDenied:
    reason = err.reason if isinstance(err, ZerolaneError) else "decide.error"
    return ToolDenied(reason, status=status_of(Refusal.UNAVAILABLE))


def _allowed(decision: Decision) -> Decision:
    if decision.allowed:
        return decision
    reasons = decision.reasons or ("decision.deny",)
    status = decision_status(decision)
    raise ToolDenied(reasons[0], reasons, decision.decision_id, status, decision.approval_id)


def _digest(bound: inspect.BoundArguments) -> str | None:
    """What a human approval binds a guarded call by: its arguments by name, as
    canonical JSON; None (unbound: an approval cannot be asked for) when JSON cannot
    hold them."""
    try:
        return arguments_digest(dict(bound.arguments))
    except (TypeError, ValueError):
        return None


def _preview(function: str, bound: inspect.BoundArguments) -> Mapping[str, object]:
    """What an approver is shown of a guarded call: the function and its arguments as
    JSON holds them (another value by its type's name); the decider masks them before
    they are stored (:mod:`zerolane.tasks.approval_preview`)."""
    text = json.dumps(dict(bound.arguments), default=lambda value: f"<{type(value).__name__}>")
    return {"function": function[:256], "arguments": json.loads(text)}


def guard(
    action: str,
    resource: ResourceSpec,
    *,
    sensitivity: str | None = None,
    destination: str = "inproc",
    decider: InprocDecider | None = None,
) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decide every call of the decorated function (sync or async) before it runs.

    ``resource`` is a template over the function's parameters (``"files/{path}"``) or a
    callable taking the same arguments. ``decider`` defaults to the task context's.
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        gate = _Gate(fn, action, resource, sensitivity, destination, decider)
        if inspect.iscoroutinefunction(fn):
            coroutine = cast(Callable[P, Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def guarded_async(*args: P.args, **kwargs: P.kwargs) -> Any:
                await gate.acheck(args, kwargs)
                return await coroutine(*args, **kwargs)

            return cast(Callable[P, R], guarded_async)

        @functools.wraps(fn)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            gate.check(args, kwargs)
            return fn(*args, **kwargs)

        return guarded

    return decorate

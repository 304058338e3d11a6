"""Token exchange (RFC 8693): delegating part of a task, and opening a task for a person.

**Delegation** (``subject_token`` = the parent task token): the parent's holder asks
for a child task for another workload, the delegate, named by its key-bound JWT-SVID
(``actor_token``). The caller proves possession of the **parent's** key with a DPoP
proof for this request whose ``ath`` is the parent token's hash; or, for a parent
bound to a client certificate (RFC 8705 ``cnf.x5t#S256``), by making the request over
a connection authenticated with that very certificate (no proof). The rule is the
decider's: a ``cnf.jkt`` parent needs its proof whatever certificate comes, a
``cnf.x5t#S256`` parent needs its certificate whatever proof comes. A stolen parent
token alone mints nothing, and the parent itself states exactly what it hands on. The
child token is bound to the **delegate's** key (the SVID's ``cnf.jkt``), whatever the
parent was bound to: the parent cannot use it, and the delegate needs nothing from the
parent to use it. See ``docs/delegation.md`` for why the parent, not the delegate,
makes the call.

The child is refused, with the reason, unless it is within its parent in every
dimension: actions, resources, destinations, data ceiling (``scope.*``), audience
(``scope.audience``), window (``delegation.ttl``: it ends no later than the parent)
and budget (``delegation.budget``: carved out of the parent's remaining calls, in
the same atomic store write that adds the child, so a parent can never over-commit);
only from a ``delegable`` playbook (``delegation.not_delegable``) and at most
``max_depth`` hops from the root (``delegation.depth``); and when the grant policy
(``open_task`` for the delegate, with ``context.parent``) permits. Every exchange,
granted or refused once the parent's holder is authenticated, is a ``task.delegate``
audit event. A refusal before that (a bad, unknown or stolen subject token, a missing,
wrong or replayed proof or certificate) is not recorded here but raised as it is:
anyone can send those, so the edge audits them at a bounded rate (``token.refused``,
:mod:`zerolane.server.token_refusals`), with what was verified of the token.

**On behalf of a person** (``subject_token`` = an OIDC ID token of a configured
issuer): the caller is the agent (``actor_token`` = its JWT-SVID, DPoP proof by its
key with ``ath`` = the SVID's hash); it opens a new root task from ``playbook``
exactly as ``POST /v1/tasks`` does, recording the verified person on the task.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import Forbidden, InvalidInput, Unauthenticated, Unavailable, ZerolaneError
from zerolane.identity.keyring import Keyring
from zerolane.identity.users import UserTokenVerifier
from zerolane.policy.context import OpenFacts, ParentFacts, open_policy_request
from zerolane.policy.engine import PolicyEngine
from zerolane.store.changes import AddChildTask
from zerolane.store.records import TaskRecord
from zerolane.tasks.auth import Authenticator, Delegate, TaskHolder
from zerolane.tasks.lifecycle import (
    DEFAULT_TTL,
    MAX_INTENT,
    OpenRequest,
    RecordedTaskStore,
    TaskLifecycle,
    effective_state,
    user_facts,
)
from zerolane.tasks.playbook_registry import PlaybookRegistry
from zerolane.tasks.playbooks import Playbook, opener_matches
from zerolane.tasks.scope import Scope, requested_subscope
from zerolane.tokens.rfc8693 import ExchangeRequest, act_claim, delegated_chain
from zerolane.tokens.rfc9068 import TaskTokenClaims, issue_task_token
from zerolane.types import Clock, Outcome, TaskState

METHOD = "POST"


@dataclass(frozen=True, slots=True)
class Exchanged:
    """A granted exchange: the new task and its token (bound to the delegate's key, or
    to the agent's for a task opened for a person)."""

    task: TaskRecord
    token: str


@dataclass(frozen=True, slots=True)
class _Child:
    """What a delegation asks for, once checked against its parent."""

    scope: Scope
    ttl: int
    max_calls: int
    audience: tuple[str, ...]
    intent: str
    depth: int


class TokenExchange:
    def __init__(
        self,
        *,
        trust_domain: str,
        keyring: Keyring,
        authenticator: Authenticator,
        lifecycle: TaskLifecycle,
        tasks: RecordedTaskStore,
        playbooks: PlaybookRegistry,
        engine: Callable[[], PolicyEngine],
        audit: AuditLog,
        clock: Clock,
        users: UserTokenVerifier | None = None,
    ) -> None:
        self.issuer = f"spiffe://{trust_domain}"
        self._keyring = keyring
        self._auth = authenticator
        self._lifecycle = lifecycle
        self._tasks = tasks
        self._playbooks = playbooks
        self._engine = engine
        self._audit = audit
        self._clock = clock
        self._users = users

    def exchange(
        self,
        request: ExchangeRequest,
        proof: str | None,
        *,
        url: str,
        client_cert: bytes | None = None,
    ) -> Exchanged:
        """Grant ``request`` (made to ``url`` with the DPoP ``proof``, over a connection
        with the client certificate ``client_cert``, DER, if any), or raise with the
        reason; see the module docstring for who must prove what."""
        if request.for_user:
            return self.open_for_user(request, proof, url=url)
        return self.delegate(request, proof, url=url, client_cert=client_cert)

    # delegation -----------------------------------------------------------------------

    def delegate(
        self,
        request: ExchangeRequest,
        proof: str | None,
        *,
        url: str,
        client_cert: bytes | None = None,
    ) -> Exchanged:
        """A child of the task of ``request.subject_token`` for the workload of
        ``request.actor_token``; ``proof`` must be by the parent's key, or, for a
        certificate-bound parent, ``client_cert`` (the connection's verified client
        certificate, DER) must be the one it is bound to."""
        # not authenticated: not audited here (the edge's ``token.refused``, at a rate)
        holder = self._auth.task_holder(
            request.subject_token, proof, method=METHOD, url=url, client_cert=client_cert
        )
        delegate: Delegate | None = None
        try:
            delegate = self._auth.delegate(request.actor_token)
            return self._delegate(holder, delegate, request)
        except Unavailable:
            raise
        except ZerolaneError as err:
            self._audit.record(
                "task.delegate",
                actor=Actor("workload", holder.claims.subject),
                subject=holder.claims.task_id,
                outcome=Outcome.DENIED,
                reason=err.reason,
                details={
                    "parent_id": holder.claims.task_id,
                    "delegate": delegate.workload.spiffe_id if delegate else None,
                    "requested": _asked(request),
                },
            )
            err.audited = True
            raise

    def _delegate(
        self, holder: TaskHolder, delegate: Delegate, request: ExchangeRequest
    ) -> Exchanged:
        claims = holder.claims
        now = self._clock.now()
        parent = self._lifecycle.live(claims, now=now)  # the subject token's live task
        playbook = self._playbooks.get(parent.playbook)  # its current delegation rules
        if not playbook.delegable:
            raise Forbidden(
                "delegation.not_delegable", f"tasks of playbook {playbook.name} are not delegable"
            )
        depth = parent.depth + 1
        if depth > playbook.max_depth:
            raise Forbidden(
                "delegation.depth",
                f"a child would be {depth} hops from its root; playbook {playbook.name} "
                f"allows {playbook.max_depth}",
            )
        child = self._child(parent, request, depth, now)
        self._permit(delegate, playbook, parent, child, now)
        issued_at = int(now)
        task_id = "tsk_" + secrets.token_urlsafe(16)
        jti = uuid.uuid4().hex
        chain = delegated_chain(claims.subject, claims.act, delegate.workload.spiffe_id)
        token_claims = TaskTokenClaims(
            issuer=self.issuer,
            subject=delegate.workload.spiffe_id,
            audience=child.audience,
            issued_at=issued_at,
            not_before=issued_at,
            expires_at=issued_at + child.ttl,
            jti=jti,
            jkt=delegate.jkt,
            task_id=task_id,
            authorization_details=tuple(child.scope.authorization_details()),
            act=act_claim(chain),
        )
        token = issue_task_token(self._keyring.sign, token_claims)
        record = TaskRecord(
            task_id=task_id,
            owner=delegate.workload.spiffe_id,
            playbook=parent.playbook,
            playbook_version=parent.playbook_version,
            intent=child.intent,
            scope=child.scope.to_json(),
            authorization_details=child.scope.details_json(),
            jkt=delegate.jkt,
            audience=child.audience,
            state=TaskState.ACTIVE,
            created_at=now,
            expires_at=float(token_claims.expires_at),
            max_calls=child.max_calls,
            calls_used=0,
            touched=parent.touched,  # what the parent read, the child may not send out
            token_jti=jti,
            on_behalf_of=parent.on_behalf_of,
            parent_id=parent.task_id,
            depth=depth,
            user_subject=parent.user_subject,
            user_issuer=parent.user_issuer,
        )

        def delegated(carved: TaskRecord | None) -> list[dict[str, object]]:
            """The child's ``task.delegate`` event, stored in the write that adds it."""
            if carved is None:
                return []  # refused: nothing written, nothing to record
            event = self._audit.event(
                "task.delegate",
                Actor("workload", claims.subject),
                task_id,
                Outcome.SUCCESS,
                details={
                    "parent_id": parent.task_id,
                    "delegate": record.owner,
                    "depth": depth,
                    "act": [actor.sub for actor in chain],
                    "intent": record.intent,
                    "scope": record.scope,
                    "audience": list(record.audience),
                    "expires_at": token_claims.expires_at,
                    "max_calls": record.max_calls,
                    "parent_calls_left": carved.max_calls - carved.calls_used,
                    "jkt": record.jkt,
                    "token_id": jti,
                },
            )
            return [event.unsealed()]

        carved = self._tasks.write_recorded(AddChildTask(record, now), delegated, seal)
        if carved is None:
            self._refused_carve(parent, record)
        return Exchanged(record, token)

    def _child(
        self, parent: TaskRecord, request: ExchangeRequest, depth: int, now: float
    ) -> _Child:
        scope = requested_subscope(
            request.authorization_details, Scope.from_json(parent.scope), parent.task_id
        )
        remaining = int(parent.expires_at) - int(now)
        ttl = request.ttl if request.ttl is not None else min(DEFAULT_TTL, remaining)
        if ttl > remaining:
            raise Forbidden(
                "delegation.ttl", f"ttl {ttl}s outlives the parent task ({remaining}s left)"
            )
        left = parent.max_calls - parent.calls_used
        max_calls = request.max_calls if request.max_calls is not None else left
        if max_calls > left or max_calls <= 0:
            raise Forbidden(
                "delegation.budget", f"max_calls {max_calls} exceeds the parent's {left} left"
            )
        for asked in request.audience:
            if asked not in parent.audience:
                raise Forbidden(
                    "scope.audience", f"audience {asked[:200]!r} is not one of the parent's"
                )
        audience = tuple(dict.fromkeys([self.issuer, *(request.audience or parent.audience)]))
        intent = request.intent if request.intent is not None else parent.intent
        if not intent.strip() or len(intent) > MAX_INTENT:
            raise InvalidInput("task.intent", f"intent is 1..{MAX_INTENT} characters of text")
        return _Child(scope, ttl, max_calls, audience, intent, depth)

    def _permit(
        self, delegate: Delegate, playbook: Playbook, parent: TaskRecord, child: _Child, now: float
    ) -> None:
        """The grant policy: may the delegate hold this child (``open_task``, with the
        parent in ``context.parent``)? Fails closed."""
        workload = delegate.workload
        parent_scope = Scope.from_json(parent.scope)
        user = user_facts(parent)
        facts = OpenFacts(
            trust_domain=workload.spiffe_id.split("/")[2],
            selectors=workload.selectors,
            owner=workload.owner,
            playbook=playbook.name,
            opener_matches=opener_matches(playbook, workload.spiffe_id, workload.selectors),
            delegable=playbook.delegable,
            max_depth=playbook.max_depth,
            playbook_ceiling=playbook.data_ceiling,
            max_ttl=playbook.max_ttl,
            playbook_max_calls=playbook.max_calls,
            actions=child.scope.actions,
            destinations=child.scope.destinations,
            ceiling=child.scope.ceiling,
            ttl=child.ttl,
            max_calls=child.max_calls,
            depth=child.depth,
            intent=child.intent,
            on_behalf_of=parent.on_behalf_of,
            user=user,
            parent=ParentFacts(
                id=parent.task_id,
                owner=parent.owner,
                playbook=parent.playbook,
                depth=parent.depth,
                actions=parent_scope.actions,
                resources=parent_scope.resources,
                destinations=parent_scope.destinations,
                ceiling=parent_scope.ceiling,
                expires_at=parent.expires_at,
                calls_left=parent.max_calls - parent.calls_used,
                user=user,
            ),
        )
        try:
            result = self._engine().decide(open_policy_request(workload.spiffe_id, facts, now))
        except Exception as err:  # fail closed: an engine that raises refuses, never grants
            raise Forbidden("policy.error", "the grant policy could not be evaluated") from err
        if result.errors:
            raise Forbidden("policy.error", "the grant policy could not be evaluated")
        if not result.allowed:
            reason = result.policy_ids[0] if result.policy_ids else "grant.no_permit"
            raise Forbidden(
                reason, f"policy does not let {workload.spiffe_id} hold a child of {parent.task_id}"
            )

    def _refused_carve(self, read: TaskRecord, child: TaskRecord) -> None:
        """Why the store refused to add ``child`` (the parent changed since it was read)."""
        parent = self._tasks.get_task(read.task_id)
        if parent is None:
            raise Forbidden("task.unknown", "the parent task does not exist")
        parent = self._lifecycle.mark_expired(parent)
        state = effective_state(parent, self._clock.now())
        if state is not TaskState.ACTIVE:
            raise Forbidden(f"task.{state.value}", f"the parent task is {state.value}")
        if parent.max_calls - parent.calls_used < child.max_calls:
            raise Forbidden(
                "delegation.budget",
                f"max_calls {child.max_calls} exceeds the parent's "
                f"{parent.max_calls - parent.calls_used} left",
            )
        raise Forbidden("delegation.ttl", "the child would outlive its parent")

    # on behalf of a person ------------------------------------------------------------

    def open_for_user(self, request: ExchangeRequest, proof: str | None, *, url: str) -> Exchanged:
        """A new root task for the person of ``request.subject_token`` (an ID token),
        opened by the workload of ``request.actor_token``; ``proof`` by its key."""
        # not authenticated: not audited here (the edge's ``token.refused``, at a rate)
        caller = self._auth.workload(request.actor_token, proof, method=METHOD, url=url)
        try:
            if self._users is None:
                raise Unauthenticated("id_token.unknown_issuer", "no ID token issuer is configured")
            user = self._users.verify(request.subject_token)
            if request.playbook is None or request.intent is None:
                raise InvalidInput(
                    "exchange.missing", "a task for a person needs playbook and intent"
                )
        except ZerolaneError as err:
            self._audit.record(
                "task.open",
                actor=Actor("workload", caller.workload.spiffe_id),
                subject=(request.playbook or "unknown")[:200],
                outcome=Outcome.DENIED,
                reason=err.reason,
                details={"requested": _asked(request)},
            )
            err.audited = True
            raise
        opened = self._lifecycle.open(
            caller,
            OpenRequest(
                intent=request.intent,
                playbook=request.playbook,
                authorization_details=request.authorization_details,
                ttl=request.ttl,
                max_calls=request.max_calls,
                audience=request.audience or None,
            ),
            user=user,
        )
        return Exchanged(opened.task, opened.token)


def _asked(request: ExchangeRequest) -> dict[str, object]:
    """What an exchange asked for, for its audit event (never a token)."""
    return {
        "subject_token_type": request.subject_token_type,
        "authorization_details": request.authorization_details,
        "audience": list(request.audience),
        "ttl": request.ttl,
        "max_calls": request.max_calls,
        "intent": request.intent[:MAX_INTENT] if request.intent else None,
        "playbook": request.playbook,
    }

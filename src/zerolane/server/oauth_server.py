"""The control plane as the OAuth authorization server of standard MCP clients.

The MCP authorization flow (spec 2025-11-25 "Authorization"; OAuth 2.1 authorization
code with PKCE, RFC 8414 metadata, RFC 7591 registration, RFC 8707 resources), served
for agent hosts that do not use zerolane's SDK:

1. the client registers (:mod:`zerolane.server.oauth_clients`) and becomes the workload
   ``spiffe://<td>/mcp-clients/<client_id>`` (it never gets an SVID), or names itself by
   the ``https`` URL of its metadata document, which is fetched and checked
   (:mod:`zerolane.server.oauth_client_documents`; it is then the workload
   ``spiffe://<td>/mcp-clients/url/<host>/<hash>``);
2. it sends the person to ``/oauth/authorize``; the request is checked (client, exact
   redirect URI, PKCE S256, ``resource`` one of ``[oauth] resources``), and a refusal
   about the client or redirect URI is shown, never redirected; the person signs in
   (``[oauth.local_user]``'s password, or through an OpenID provider of
   ``[[oauth.sign_in]]``: :mod:`zerolane.server.oauth_sign_in`), picks a playbook
   whose openers admit the client and says what the task is for; the client gets a
   code (60 s, once). Every answer redirected to the client carries ``iss`` (RFC 9207),
   and failed sign-ins are limited per username and address
   (:mod:`zerolane.server.oauth_throttle`);
3. at ``/oauth/token`` the code, its PKCE verifier, client and redirect URI are
   checked, and the task is opened then, as the client, on the person's behalf
   (``on_behalf_of``: the local username, free text; or, signed in through a provider,
   the verified person: the task's ``user``, its ``sub`` and ``iss``), by the
   playbook and the grant policies like any task. Its token is bound to the key of the
   request's DPoP proof (RFC 9449 section 5); a client that sends none gets a token only
   where ``allow_bearer_clients`` is set: unbound, ``bearer_token_ttl`` seconds, for the
   gateway only. A refresh token (rotated on use; a used one presented again kills its
   chain and revokes the task, RFC 9700 section 4.14.2) renews the token of the same
   task (:mod:`zerolane.tasks.renewal`) until the task ends, by the same key.

The task opens when the token is asked for, not when the person consents: only then is
the key known that its token is bound to. Every request through the gateway is decided
against the task, as for any other agent.

Refusals are audited at a bounded rate, as the gateways' are
(:mod:`zerolane.gateway.refusals`, ``[audit] refusals_*``): a failed sign-in
(``oauth.sign_in`` denied) and a client metadata document refused
(``oauth.client_registered`` denied) each go through the token buckets of (``oauth``,
reason, client address), so a flood of bad authorize, token or sign-in requests cannot
fill the log; what is not written is counted and carried by the next event written
(``suppressed``), with the listener, method, path, client address and status. Every
other refusal of the token endpoint (a bad form or proof, an unknown client, a bad
grant, code, verifier or refresh token, a reused code) is a ``token.refused`` event at
the same rate (:mod:`zerolane.server.token_refusals`).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from zerolane.audit.events import Actor, Event
from zerolane.errors import InvalidInput, ZerolaneError
from zerolane.gateway.access_log import Scope
from zerolane.gateway.refusals import audit_refusal
from zerolane.hosts import is_loopback
from zerolane.identity.users import VerifiedUser
from zerolane.server.deployment import Deployment
from zerolane.server.oauth_client_documents import (
    ClientDocumentError,
    ClientDocuments,
    is_client_id_url,
)
from zerolane.server.oauth_clients import register
from zerolane.server.oauth_page import PlaybookChoice
from zerolane.server.oauth_password import LocalUser
from zerolane.server.oauth_sign_in import OidcSignIn
from zerolane.server.oauth_state import (
    CODE_TTL,
    PAGE_TTL,
    Authorization,
    Client,
    CodeGrant,
    OAuthState,
    RefreshGrant,
    digest,
)
from zerolane.server.oauth_throttle import SignInThrottle
from zerolane.store.records import Workload
from zerolane.tasks.auth import BEARER_BINDING, WorkloadCaller
from zerolane.tasks.lifecycle import MAX_INTENT, OpenRequest
from zerolane.tasks.playbooks import opener_matches
from zerolane.tasks.renewal import TokenRenewal
from zerolane.tokens.algorithms import DPOP_ALGS
from zerolane.tokens.rfc9449 import VerifiedProof, verify_proof
from zerolane.types import Outcome, WorkloadStatus

#: RFC 7636 section 4.1: 43..128 unreserved characters
_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")
_OAUTH = Actor("system", "oauth")
#: how much of a refused client_id URL an audit event keeps
_MAX_SUBJECT = 300
#: the listener the OAuth endpoints' refusals are counted under
LISTENER = "oauth"


class OAuthError(Exception):
    """An RFC 6749 error: ``error`` the code, ``reason`` zerolane's reason id;
    ``audited``: recorded in the audit log already (else the route records it as
    ``token.refused``, :mod:`zerolane.server.token_refusals`)."""

    def __init__(
        self, status: int, error: str, reason: str, description: str, *, audited: bool = False
    ) -> None:
        super().__init__(description)
        self.status, self.error, self.reason, self.description = status, error, reason, description
        self.audited = audited


class AuthorizeRefused(Exception):
    """An authorization request refused: shown to the person (``redirect`` None: the
    client or redirect URI cannot be trusted), or sent back to the client."""

    def __init__(self, message: str, redirect: str | None = None) -> None:
        super().__init__(message)
        self.message, self.redirect = message, redirect


@dataclass(frozen=True, slots=True)
class Issued:
    """A token response (RFC 6749 section 5.1)."""

    access_token: str
    token_type: str
    expires_in: int
    refresh_token: str | None

    def json(self) -> dict[str, object]:
        out: dict[str, object] = {
            "access_token": self.access_token,
            "token_type": self.token_type,
            "expires_in": self.expires_in,
        }
        if self.refresh_token is not None:
            out["refresh_token"] = self.refresh_token
        return out


def with_query(uri: str, params: Mapping[str, str | None]) -> str:
    """``uri`` with ``params`` (those not None) added to its query."""
    query = urlencode({k: v for k, v in params.items() if v is not None})
    parts = urlsplit(uri)
    joined = f"{parts.query}&{query}" if parts.query else query
    return parts._replace(query=joined).geturl()


def s256(verifier: str) -> str:
    return (
        base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    )


def single(params: Mapping[str, list[str]], name: str) -> str | None:
    """A parameter sent at most once (RFC 6749 section 3.1); ``ValueError`` for two."""
    values = params.get(name, [])
    if len(values) > 1:
        raise ValueError(name)
    return values[0] if values else None


class OAuthServer:
    def __init__(self, deployment: Deployment) -> None:
        config = deployment.config
        if config.server.public_url is None:
            raise ValueError("[oauth] needs server.public_url")
        if config.oauth.local_user is None and not config.oauth.sign_in:
            raise ValueError("[oauth] needs [oauth.local_user] or [[oauth.sign_in]]")
        self._deployment = deployment
        self._oauth = config.oauth
        self.issuer = config.server.public_url.rstrip("/")
        self.token_url = f"{self.issuer}/oauth/token"
        self.state = OAuthState()
        user = config.oauth.local_user
        self.local_user = (
            LocalUser(user.username, deployment.home / user.password_file) if user else None
        )
        self.sign_in = (
            OidcSignIn(
                config.oauth.sign_in,
                home=deployment.home,
                users=deployment.users,
                callback_url=f"{self.issuer}/oauth/callback",
            )
            if config.oauth.sign_in
            else None
        )
        self.documents = None
        if config.oauth.client_metadata_documents:
            loopback = config.oauth.client_metadata_loopback
            if loopback and not is_loopback(urlsplit(self.issuer).hostname or ""):
                raise InvalidInput(
                    "config.oauth_client_metadata",
                    "[oauth] client_metadata_loopback is for a development server:"
                    " server.public_url is not on loopback",
                )
            self.documents = ClientDocuments(
                trust_domain=config.trust_domain,
                issuer=self.issuer,
                max_age=config.oauth.client_metadata_max_age,
                loopback=loopback,
            )
        self.throttle = SignInThrottle(
            per_user=config.oauth.failed_sign_ins_per_user,
            per_address=config.oauth.failed_sign_ins_per_address,
            backoff=config.oauth.sign_in_backoff,
        )
        self._renewal = TokenRenewal(
            trust_domain=config.trust_domain,
            keyring=deployment.keyring,
            lifecycle=deployment.lifecycle,
            audit=deployment.audit,
            clock=deployment.clock,
        )

    def metadata(self) -> dict[str, object]:
        """RFC 8414 authorization server metadata."""
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/oauth/authorize",
            "token_endpoint": self.token_url,
            "registration_endpoint": f"{self.issuer}/oauth/register",
            "response_types_supported": ["code"],
            "response_modes_supported": ["query"],
            "grant_types_supported": ["authorization_code", "refresh_token"],
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
            "dpop_signing_alg_values_supported": list(DPOP_ALGS),
            # RFC 9207: every authorization response names its issuer (``iss``)
            "authorization_response_iss_parameter_supported": True,
            "client_id_metadata_document_supported": self.documents is not None,
        }

    # registration
    def register(self, body: object) -> Client:
        """Register a public client; :class:`RegistrationError` for a refused one."""
        client = register(body, trust_domain=self._deployment.config.trust_domain, now=self._now())
        self._deployment.audit.record(
            "oauth.client_registered",
            actor=Actor("workload", client.spiffe_id),
            subject=client.client_id,
            outcome=Outcome.SUCCESS,
            details={
                "client_name": client.client_name,
                "redirect_uris": list(client.redirect_uris),
            },
        )
        self.state.add_client(client)
        return client

    # clients
    def lookup(self, client_id: str, scope: Scope, *, status: int = 400) -> Client | None:
        """The client ``client_id`` names: a registered one (None: unknown), or the one
        its metadata document describes (fetched, or as kept);
        :class:`ClientDocumentError` for a document refused (audited at the refusals'
        rate; ``scope``: the request's, ``status``: what it is answered)."""
        if not is_client_id_url(client_id):
            return self.state.client(client_id)
        try:
            if self.documents is None:
                raise ClientDocumentError(
                    "oauth.client_metadata_off",
                    "client ID metadata documents are not accepted here: register (RFC 7591)",
                )
            client, fetched = self.documents.client(client_id, self._now())
        except ClientDocumentError as err:
            self.refused(
                scope,
                "oauth.client_registered",
                err.reason,
                _OAUTH,
                client_id[:_MAX_SUBJECT],
                status=status,
            )
            raise
        if fetched:
            self._deployment.audit.record(
                "oauth.client_registered",
                actor=Actor("workload", client.spiffe_id),
                subject=client.client_id,
                outcome=Outcome.SUCCESS,
                details={
                    "client_name": client.client_name,
                    "redirect_uris": list(client.redirect_uris),
                },
            )
        return client

    def known_client(self, client_id: str, scope: Scope) -> Client | None:
        """:meth:`lookup`, with a refused document as None (for a page already shown)."""
        try:
            return self.lookup(client_id, scope)
        except ClientDocumentError:
            return None

    # authorization
    def authorization(
        self, params: Mapping[str, list[str]], csrf: str, scope: Scope
    ) -> tuple[Client, Authorization]:
        """The checked request of ``GET /oauth/authorize``; :class:`AuthorizeRefused`."""
        try:
            client_id = single(params, "client_id")
            redirect_uri = single(params, "redirect_uri")
        except ValueError as err:
            raise AuthorizeRefused(f"the request repeats {err}") from None
        try:
            client = self.lookup(client_id, scope) if client_id else None
        except ClientDocumentError as err:
            raise AuthorizeRefused(f"{err.error}: {err.description}") from None
        if client is None:
            raise AuthorizeRefused("this app is not registered here (or was before a restart)")
        if redirect_uri is None or redirect_uri not in client.redirect_uris:
            raise AuthorizeRefused("the app's redirect URI is not one it registered")
        try:
            state = single(params, "state")
        except ValueError:
            state = None

        def back(error: str, description: str) -> AuthorizeRefused:
            answer = {
                "error": error,
                "error_description": description,
                "state": state,
                "iss": self.issuer,
            }
            return AuthorizeRefused(description, with_query(redirect_uri, answer))

        try:
            values = {
                name: single(params, name)
                for name in ("response_type", "code_challenge", "code_challenge_method", "resource")
            }
        except ValueError as err:
            raise back("invalid_request", f"the request repeats {err}") from None
        if values["response_type"] != "code":
            raise back("unsupported_response_type", "response_type is code")
        challenge = values["code_challenge"]
        if values["code_challenge_method"] != "S256" or not challenge:
            raise back("invalid_request", "PKCE is required: code_challenge with method S256")
        if not _CHALLENGE.fullmatch(challenge):
            raise back("invalid_request", "code_challenge is a base64url SHA-256")
        resource = values["resource"]
        if resource is None or resource not in self._oauth.resources:
            raise back("invalid_target", "resource names none of this server's MCP gateways")
        return client, Authorization(
            client_id=client.client_id,
            redirect_uri=redirect_uri,
            state=state,
            code_challenge=challenge,
            resource=resource,
            expires_at=self._now() + PAGE_TTL,
            csrf=digest(csrf),
        )

    def playbooks_for(self, client: Client) -> list[PlaybookChoice]:
        """The playbooks whose openers admit ``client``."""
        return [
            PlaybookChoice(pb.name, pb.description)
            for pb, _ in self._deployment.playbooks.list()
            if opener_matches(pb, client.spiffe_id, ())
        ]

    def sign_in_refused(
        self, scope: Scope, client_id: str, reason: str = "oauth.sign_in", *, status: int = 401
    ) -> None:
        """Audit a refused sign-in (at the refusals' rate; never blocks on the log)."""
        who = Actor("user", "unauthenticated")
        self.refused(scope, "oauth.sign_in", reason, who, client_id[:_MAX_SUBJECT], status=status)

    def refused(
        self, scope: Scope, kind: str, reason: str, actor: Actor, subject: str, *, status: int
    ) -> None:
        """Count a refusal of ``scope`` (the request) and have it audited as ``kind``
        when the deployment's refusal rates allow (:mod:`zerolane.gateway.refusals`)."""
        audit = self._deployment.audit

        def event_of(details: dict[str, object]) -> Event:
            return audit.event(kind, actor, subject, Outcome.DENIED, reason, details)

        audit_refusal(
            self._deployment.refusals,
            scope,
            listener=LISTENER,
            reason=reason,
            status=status,
            event_of=event_of,
        )

    def signed_in(self, client_id: str, user: VerifiedUser) -> None:
        """Audit a person's sign-in through an OpenID provider."""
        self._deployment.audit.record(
            "oauth.sign_in",
            actor=Actor("user", user.subject),
            subject=client_id,
            outcome=Outcome.SUCCESS,
        )

    def consent(
        self,
        authorization: Authorization,
        client: Client,
        playbook: str,
        intent: str,
        user: VerifiedUser | None = None,
    ) -> str:
        """The redirect carrying a code for what the signed-in person consented to;
        ``ValueError`` for a playbook not offered or an intent out of bounds."""
        if playbook not in {choice.name for choice in self.playbooks_for(client)}:
            raise ValueError("pick one of the playbooks offered")
        if not intent.strip() or len(intent) > MAX_INTENT:
            raise ValueError(f"say what the task is for, in 1..{MAX_INTENT} characters")
        if user is not None:
            person = user.subject
        elif self.local_user is not None:
            person = self.local_user.username
        else:  # the route signs someone in first
            raise ValueError("sign in first")
        code = self.state.add_code(
            CodeGrant(
                client_id=client.client_id,
                redirect_uri=authorization.redirect_uri,
                code_challenge=authorization.code_challenge,
                resource=authorization.resource,
                playbook=playbook,
                intent=intent,
                on_behalf_of=person,
                expires_at=self._now() + CODE_TTL,
                user=user,
            )
        )
        self._deployment.audit.record(
            "oauth.consented",
            actor=Actor("user", person),
            subject=client.client_id,
            outcome=Outcome.SUCCESS,
            details={"client_id": client.client_id, "playbook": playbook, "intent": intent},
        )
        answer = {"code": code, "state": authorization.state, "iss": self.issuer}
        return with_query(authorization.redirect_uri, answer)

    def denied(self, authorization: Authorization) -> str:
        answer = {"error": "access_denied", "state": authorization.state, "iss": self.issuer}
        return with_query(authorization.redirect_uri, answer)

    # the token endpoint
    def token(self, params: Mapping[str, list[str]], proof: str | None, scope: Scope) -> Issued:
        try:
            form = {name: single(params, name) for name in params}
        except ValueError as err:
            raise OAuthError(400, "invalid_request", "oauth.repeated", f"{err} repeated") from None
        client_id = form.get("client_id")
        try:
            client = self.lookup(client_id, scope, status=401) if client_id else None
        except ClientDocumentError as err:  # audited as oauth.client_registered denied
            raise OAuthError(401, err.error, err.reason, err.description, audited=True) from None
        if client is None:
            raise OAuthError(401, "invalid_client", "oauth.client", "unknown client_id")
        verified = self._proof(proof)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            return self._code(client, form, verified)
        if grant_type == "refresh_token" and "refresh_token" in client.grant_types:
            return self._refresh(client, form, verified)
        raise OAuthError(400, "unsupported_grant_type", "oauth.grant_type", "unsupported grant")

    def _proof(self, proof: str | None) -> VerifiedProof | None:
        """The request's verified DPoP proof; None without one where bearer clients are
        allowed; refused otherwise (before a code or refresh token is used up)."""
        deployment = self._deployment
        if proof is None:
            if not self._oauth.allow_bearer_clients:
                raise OAuthError(
                    400,
                    "invalid_dpop_proof",
                    "dpop.missing",
                    "tokens here are DPoP-bound: send a DPoP proof (RFC 9449)",
                )
            return None
        try:
            verified = verify_proof(
                proof,
                method="POST",
                url=self.token_url,
                access_token=None,
                replay=deployment.replay,
                now=self._now(),
            )
        except ZerolaneError as err:
            raise OAuthError(400, "invalid_dpop_proof", err.reason, err.message) from None
        if not deployment.authenticator.spend_proof(verified.spent()):
            raise OAuthError(400, "invalid_dpop_proof", "dpop.replayed", "the proof was used")
        return verified

    def _caller(self, client: Client, proof: VerifiedProof | None, bearer: bool) -> WorkloadCaller:
        now = self._now()
        workload = Workload(client.spiffe_id, (), None, WorkloadStatus.ENABLED, now, now)
        if bearer:
            return WorkloadCaller(workload, None, None, bearer_ttl=self._oauth.bearer_token_ttl)
        return WorkloadCaller(workload, None, proof)

    def _code(
        self, client: Client, form: Mapping[str, str | None], proof: VerifiedProof | None
    ) -> Issued:
        code, verifier = form.get("code"), form.get("code_verifier")
        if not code or not verifier or not _VERIFIER.fullmatch(verifier):
            raise OAuthError(400, "invalid_request", "oauth.request", "code and code_verifier")
        grant = self.state.redeem_code(code, self._now())
        if grant is None:
            raise OAuthError(400, "invalid_grant", "oauth.code", "the code is unknown or expired")
        if grant.used:  # RFC 6749 section 4.1.2: what it gave is revoked
            self._revoke(self.state.code_task(code), "oauth.code_reused")
            raise OAuthError(400, "invalid_grant", "oauth.code_reused", "the code was used")
        same = hmac.compare_digest(grant.client_id.encode(), client.client_id.encode())
        if not same or form.get("redirect_uri") != grant.redirect_uri:
            raise OAuthError(400, "invalid_grant", "oauth.code", "the code was not issued so")
        if not hmac.compare_digest(s256(verifier).encode(), grant.code_challenge.encode()):
            raise OAuthError(400, "invalid_grant", "oauth.pkce", "code_verifier does not match")
        resource = form.get("resource")
        if resource is not None and resource != grant.resource:
            raise OAuthError(400, "invalid_target", "oauth.resource", "not the consented resource")
        caller = self._caller(client, proof, bearer=proof is None)
        deployment = self._deployment
        try:
            playbook = deployment.playbooks.get(grant.playbook)
            opened = deployment.lifecycle.open(
                caller,
                OpenRequest(
                    intent=grant.intent,
                    playbook=grant.playbook,
                    ttl=playbook.max_ttl,
                    on_behalf_of=grant.on_behalf_of,
                    audience=[grant.resource],
                ),
                user=grant.user,
            )
        except ZerolaneError as err:  # a refused open is audited (task.open denied)
            raise OAuthError(
                400, "invalid_grant", err.reason, err.message, audited=err.audited
            ) from None
        self.state.code_opened(code, opened.task.task_id)
        refresh = None
        if "refresh_token" in client.grant_types:
            refresh = self.state.add_refresh(
                RefreshGrant(
                    chain=OAuthState.new_chain(),
                    client_id=client.client_id,
                    task_id=opened.task.task_id,
                    resource=grant.resource,
                    binding=caller.binding,
                    expires_at=opened.task.expires_at,
                )
            )
        task = opened.task
        expires_at = task.expires_at
        if caller.bearer_ttl is not None:  # as the lifecycle signed it
            expires_at = min(expires_at, int(task.created_at) + caller.bearer_ttl)
        return self._issued(opened.token, expires_at, caller, refresh)

    def _refresh(
        self, client: Client, form: Mapping[str, str | None], proof: VerifiedProof | None
    ) -> Issued:
        token = form.get("refresh_token")
        if not token:
            raise OAuthError(400, "invalid_request", "oauth.request", "refresh_token is required")
        seen = self.state.refresh_grant(token, self._now())
        if seen is None:
            raise OAuthError(400, "invalid_grant", "oauth.refresh", "refresh_token is not valid")
        # who may use it is checked before it is used up: a thief burns nothing
        if not hmac.compare_digest(seen.client_id.encode(), client.client_id.encode()):
            raise OAuthError(400, "invalid_grant", "oauth.refresh", "not this client's token")
        bearer = seen.binding == BEARER_BINDING
        if not bearer and (
            proof is None or not hmac.compare_digest(proof.jkt.encode(), seen.binding.encode())
        ):
            raise OAuthError(
                400, "invalid_dpop_proof", "dpop.key", "prove the key the token is bound to"
            )
        grant = self.state.use_refresh(token, self._now())
        if grant is None:
            raise OAuthError(400, "invalid_grant", "oauth.refresh", "refresh_token is not valid")
        if grant.used:  # reuse: the chain is dead now, and so is the task
            self._deployment.audit.record(
                "oauth.refresh_reused",
                actor=_OAUTH,
                subject=grant.task_id,
                outcome=Outcome.DENIED,
                reason="oauth.refresh_reused",
                details={"client_id": grant.client_id, "task_id": grant.task_id},
            )
            self._revoke(grant.task_id, "oauth.refresh_reused")
            raise OAuthError(
                400, "invalid_grant", "oauth.refresh_reused", "refresh_token reused", audited=True
            )
        resource = form.get("resource")
        if resource is not None and resource != grant.resource:
            raise OAuthError(400, "invalid_target", "oauth.resource", "not the token's resource")
        if bearer and not self._oauth.allow_bearer_clients:
            raise OAuthError(400, "invalid_grant", "token.bearer_refused", "no bearer tokens here")
        caller = self._caller(client, proof, bearer=bearer)
        try:
            renewed = self._renewal.renew(grant.task_id, caller)
        except ZerolaneError as err:
            raise OAuthError(
                400, "invalid_grant", err.reason, err.message, audited=err.audited
            ) from None
        refresh = self.state.add_refresh(
            RefreshGrant(
                chain=grant.chain,
                client_id=grant.client_id,
                task_id=grant.task_id,
                resource=grant.resource,
                binding=grant.binding,
                expires_at=renewed.task.expires_at,
            )
        )
        return self._issued(renewed.token, renewed.expires_at, caller, refresh)

    def _issued(
        self, token: str, expires_at: float, caller: WorkloadCaller, refresh: str | None
    ) -> Issued:
        return Issued(
            access_token=token,
            token_type="Bearer" if caller.bearer_ttl is not None else "DPoP",
            expires_in=max(0, int(expires_at) - int(self._now())),
            refresh_token=refresh,
        )

    def _revoke(self, task_id: str | None, reason: str) -> None:
        if task_id is None:
            return
        with contextlib.suppress(ZerolaneError):  # ended already: nothing to take back
            self._deployment.lifecycle.revoke(task_id, actor=_OAUTH, reason=reason)

    def _now(self) -> float:
        return self._deployment.clock.now()

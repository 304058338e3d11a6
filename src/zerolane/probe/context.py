"""What a scenario works with: the target's profile, the credential source, the wire,
and the legitimate request made right (the twin every attack is measured against)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from zerolane.probe.callback import Callback
from zerolane.probe.credentials import Credential, CredentialSource, IssuerRefused
from zerolane.probe.model import Exchange, Need
from zerolane.probe.profile import Call, TargetProfile
from zerolane.probe.wire import Wire, secret_parameters
from zerolane.tokens.rfc9449 import PrivateKey, make_proof

#: ``proof=FRESH``: a new, correct DPoP proof for the request (when the token is bound)
FRESH = "fresh"


class ProbeContext:
    """One probe run's shared state. Credentials issued here are remembered by the wire
    (masked in the evidence) and ended by :meth:`close`, as is the ``callback``
    listener (the key material ``jku`` and ``x5u`` name: loopback by default)."""

    def __init__(
        self,
        profile: TargetProfile,
        source: CredentialSource,
        wire: Wire,
        *,
        clock: Callable[[], float] = time.time,
        callback: Callback | None = None,
    ) -> None:
        self.profile = profile
        self.source = source
        self.wire = wire
        self.clock = clock
        self.callback = callback if callback is not None else Callback()
        self._primary: Credential | None = None
        held = getattr(source, "secrets", None)  # a client secret, a subject token...
        if callable(held):
            wire.remember(*held())
        # a credential in the target's own URL (?access_token=...): masked in every form
        wire.remember(*secret_parameters(profile.url))

    # credentials

    def credential(self) -> Credential:
        """The scenario's credential (issued on first use): a new one for every
        scenario (:meth:`next_scenario`), so what one attack did to its task (spent its
        calls, raised its risk, got it suspended by continuous verification) never
        decides the next scenario's twin. A scenario that needs several takes
        :meth:`fresh` as well."""
        if self._primary is None:
            self._primary = self.fresh()
        return self._primary

    def next_scenario(self) -> None:
        """The next scenario starts: its :meth:`credential` will be a new one."""
        self._primary = None

    def fresh(self, *, ttl: int | None = None, audience: str | None = None) -> Credential:
        """A new credential of its own (a new task)."""
        credential = self.source.issue(ttl=ttl, audience=audience)
        self.wire.remember(credential.token)
        return credential

    def meets(self) -> frozenset[Need]:
        """What this run can do: the source's abilities, the profile's halves, and
        ``PROOF_KEY`` when the shared credential is bound to a key. Raises
        :class:`IssuerRefused` when no credential can be had at all."""
        met = set(self.source.meets)
        if self.credential().key is not None:
            met.add(Need.PROOF_KEY)
        if self.profile.forbidden is not None:
            met.add(Need.FORBIDDEN_REQUEST)
        if self.profile.mcp is not None:
            met.add(Need.MCP)
        if self.profile.echoes:
            met.add(Need.ECHO)
        return frozenset(met)

    # requests

    def proof(
        self,
        credential: Credential,
        method: str,
        url: str,
        *,
        key: PrivateKey | None = None,
        iat: int | None = None,
        jti: str | None = None,
    ) -> str:
        """A DPoP proof for ``method url`` with ``credential``'s token (signed by
        ``key``, the credential's own by default)."""
        signer = key if key is not None else credential.key
        if signer is None:
            raise ValueError("a bearer credential has no key to sign a proof with")
        proof = make_proof(
            signer, method=method, url=url, access_token=credential.token, iat=iat, jti=jti
        )
        self.wire.remember(proof)
        return proof

    def authorization(
        self, credential: Credential, method: str, url: str, *, proof: str | None = FRESH
    ) -> dict[str, str]:
        """The headers that present ``credential`` for ``method url``: the
        ``Authorization`` header and, for a bound token, a fresh proof (``proof=FRESH``),
        the given one, or none (``proof=None``)."""
        headers = {"Authorization": f"{credential.scheme} {credential.token}"}
        if proof == FRESH:
            if credential.key is not None:
                headers["DPoP"] = self.proof(credential, method, url)
        elif proof is not None:
            headers["DPoP"] = proof
        return headers

    def send(
        self,
        role: str,
        call: Call,
        credential: Credential | None,
        *,
        proof: str | None = FRESH,
        headers: Mapping[str, str] | None = None,
        raw_path: str | None = None,
        body: bytes | None = None,
        method: str | None = None,
    ) -> Exchange:
        """Send ``call`` (or its ``method`` / ``raw_path`` / ``body`` overridden) with
        ``credential`` presented as :meth:`authorization` says, plus ``headers``."""
        verb = method or call.method
        url = self.profile.absolute(call.path)
        sent: dict[str, Any] = dict(call.headers)
        if credential is not None:
            sent.update(self.authorization(credential, verb, url, proof=proof))
        sent.update(headers or {})
        return self.wire.send(
            role,
            verb,
            url,
            headers=sent,
            body=call.body if body is None else body,
            raw_path=raw_path,
        )

    def twin(self, credential: Credential | None = None) -> Exchange:
        """The allowed request, made right with ``credential`` (the shared one)."""
        return self.send("twin", self.profile.allowed, credential or self.credential())

    def refusal(self, role: str, refused: IssuerRefused) -> Exchange:
        """An issuer's refusal (a delegation, a token request) as an exchange in the
        evidence."""
        return Exchange(
            role,
            "POST",
            self.wire.mask(refused.url),
            {},
            0,
            refused.status,
            {},
            self.wire.mask(refused.reason)[:400],
            0.0,
        )

    def close(self) -> None:
        try:
            self.source.close()
        finally:
            self.callback.close()

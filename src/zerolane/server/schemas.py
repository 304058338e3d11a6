"""Request and response bodies of the control-plane API. Unknown fields are refused."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class AttestBody(Strict):
    join_token: StrictStr | None = Field(None, max_length=256, description="one-time join token")
    jwt: StrictStr | None = Field(
        None, max_length=16384, description="a workload JWT from a configured issuer"
    )
    x509_svid: StrictStr | None = Field(
        None, max_length=32768, description="PEM chain of an X.509-SVID from a federated domain"
    )
    x509_proof: StrictStr | None = Field(
        None, max_length=4096, description="JWS signed by the X.509-SVID's key (see docs)"
    )
    public_jwk: dict[str, Any] | None = Field(
        None, description="the workload's public key; binds the SVID (cnf.jkt)"
    )
    audience: StrictStr | list[StrictStr] | None = None
    ttl: StrictInt | None = Field(None, gt=0, description="requested SVID lifetime, seconds")
    spiffe_id: StrictStr | None = Field(None, max_length=2048)
    csr: StrictStr | None = Field(
        None,
        max_length=16384,
        description="PEM PKCS#10 request: also issue an X.509-SVID for its key (the SPIFFE "
        "ID is the attested one; the CSR's names are ignored)",
    )


class AttestResponse(BaseModel):
    svid: str
    spiffe_id: str
    audience: list[str]
    expires_at: int
    expires_in: int
    #: with a ``csr``: the X.509-SVID (PEM, leaf first), the trust domain's X.509
    #: authorities (PEM) and when the certificate expires
    x509_svid: str | None = None
    x509_bundle: str | None = None
    x509_expires_at: int | None = None


class RegisterBody(Strict):
    spiffe_id: StrictStr = Field(max_length=4096)
    selectors: list[StrictStr] = Field(default_factory=list, max_length=64)
    owner: StrictStr | None = None


class SpiffeIdBody(Strict):
    spiffe_id: StrictStr = Field(max_length=4096)


class JoinTokenBody(Strict):
    spiffe_id: StrictStr = Field(max_length=4096)
    ttl: StrictInt = Field(600, gt=0)


class WorkloadOut(BaseModel):
    spiffe_id: str
    selectors: list[str]
    owner: str | None
    status: str
    created_at: float
    updated_at: float


class ErrorBody(BaseModel):
    """Every refusal's error object (:func:`zerolane.gateway.edge.http.error_body`)."""

    error: str = Field(description="a short code: invalid_request, invalid_token, forbidden...")
    reason: str = Field(description="the stable reason id")
    message: str = Field(description="what went wrong, for people")
    reasons: list[str] = Field(description="every reason (a decision's), else [reason]")
    decision_id: str | None = Field(None, description="the audited decision, if one was made")

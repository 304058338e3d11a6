"""JWT-issuer attestation: each refusal next to its legitimate twin."""

from __future__ import annotations

import hmac
import json
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import replace
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from jwt.utils import base64url_encode

from tests.identity.attestors.cases import FixedClock
from zerolane.audit.log import AuditLog
from zerolane.config import Config, JwtIssuerConfig
from zerolane.errors import InvalidInput
from zerolane.identity.attestors.base import AttestationError, Attested
from zerolane.identity.attestors.jwt_issuer import JwtIssuerAttestor
from zerolane.identity.attestors.jwt_issuer.claims import LEEWAY, lookup
from zerolane.identity.attestors.jwt_issuer.jwks import REFETCH_INTERVAL
from zerolane.server.deployment import build_attestors
from zerolane.store.memory import MemoryStores

K8S = "https://kubernetes.default.svc.cluster.local"
CI = "https://token.actions.example"
AUDIENCE = "zerolane"
K8S_CLAIMS = {
    "kubernetes.io.namespace": "k8s_ns",
    "kubernetes.io.serviceaccount.name": "k8s_sa",
    "kubernetes.io.pod.name": "k8s_pod",
    "sub": "k8s_sub",
}


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def other_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


def public_jwk(key: Any, kid: str, **members: object) -> dict[str, Any]:
    public = key.public_key()
    algorithm = RSAAlgorithm if isinstance(public, rsa.RSAPublicKey) else ECAlgorithm
    return {**algorithm.to_jwk(public, as_dict=True), "kid": kid, "use": "sig", **members}


def k8s_claims(clock: FixedClock, **changes: object) -> dict[str, object]:
    """Kubernetes service-account token claims; a ``None`` change drops the claim."""
    now = clock.now()
    claims: dict[str, object] = {
        "iss": K8S,
        "aud": [AUDIENCE],
        "sub": "system:serviceaccount:build:builder",
        "iat": int(now),
        "nbf": int(now),
        "exp": int(now) + 600,
        "kubernetes.io": {
            "namespace": "build",
            "pod": {"name": "builder-7f9c", "uid": "0c2d"},
            "serviceaccount": {"name": "builder", "uid": "91aa"},
        },
    }
    claims.update(changes)
    return {k: v for k, v in claims.items() if v is not None}


def sign(key: Any, claims: dict[str, object], alg: str = "RS256", kid: str = "k1") -> str:
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def compact(
    header: dict[str, object], claims: dict[str, object], mac: Callable[[bytes], bytes]
) -> str:
    """A compact JWS built by hand, for tokens PyJWT refuses to make."""
    head = base64url_encode(json.dumps(header).encode())
    body = base64url_encode(json.dumps(claims).encode())
    signing_input = head + b"." + body
    return (signing_input + b"." + base64url_encode(mac(signing_input))).decode()


def rs256(key: rsa.RSAPrivateKey) -> Callable[[bytes], bytes]:
    return lambda data: key.sign(data, padding.PKCS1v15(), hashes.SHA256())


def write_jwks(path: Path, *keys: dict[str, Any]) -> None:
    path.write_text(json.dumps({"keys": list(keys)}))


def k8s_issuer(**changes: Any) -> JwtIssuerConfig:
    config = JwtIssuerConfig(
        name="k8s",
        issuer=K8S,
        audience=AUDIENCE,
        jwks_file="k8s-jwks.json",
        claims=dict(K8S_CLAIMS),
    )
    return replace(config, **changes)


@pytest.fixture
def attestor(tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey) -> JwtIssuerAttestor:
    write_jwks(tmp_path / "k8s-jwks.json", public_jwk(rsa_key, "k1"))
    return JwtIssuerAttestor([k8s_issuer()], clock, base=tmp_path)


def refused(attestor: JwtIssuerAttestor, token: object) -> str:
    with pytest.raises(AttestationError) as info:
        attestor.attest(token)
    return info.value.reason


# --- what a good token proves -------------------------------------------------------


def test_kubernetes_token_proves_issuer_and_nested_claims(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    attested = attestor.attest(sign(rsa_key, k8s_claims(clock)))
    assert attested == Attested(
        method="jwt_issuer",
        selectors=(
            "jwt_issuer:k8s",
            "k8s_ns:build",
            "k8s_sa:builder",
            "k8s_pod:builder-7f9c",
            "k8s_sub:system:serviceaccount:build:builder",
        ),
        spiffe_id=None,
        details={"issuer": "k8s", "sub": "system:serviceaccount:build:builder"},
    )


def test_only_string_and_number_claims_become_selectors(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    write_jwks(tmp_path / "k8s-jwks.json", public_jwk(rsa_key, "k1"))
    mapping = {
        "uid": "uid",
        "groups": "group",
        "admin": "admin",
        "label": "label",
        "absent": "absent",
        "kubernetes.io.namespace.deeper": "deep",
        "kubernetes.io.pod": "pod",
    }
    attestor = JwtIssuerAttestor([k8s_issuer(claims=mapping)], clock, base=tmp_path)
    claims = k8s_claims(clock, uid=1001, groups=["a"], admin=True, label="has space")
    attested = attestor.attest(sign(rsa_key, claims))
    assert attested.selectors == ("jwt_issuer:k8s", "uid:1001")


def test_claim_paths_take_the_longest_key_at_each_level() -> None:
    claims = {
        "kubernetes.io": {"namespace": "ns", "pod": {"name": "p"}},
        "a": {"b": "nested"},
        "a.b": "dotted",
        "x": "scalar",
    }
    assert lookup(claims, "kubernetes.io.namespace") == "ns"
    assert lookup(claims, "kubernetes.io.pod.name") == "p"
    assert lookup(claims, "a.b") == "dotted"
    assert lookup(claims, "x") == "scalar"
    assert lookup(claims, "x.y") is None
    assert lookup(claims, "kubernetes") is None
    assert lookup(claims, "kubernetes.io.missing") is None


def test_every_configured_algorithm_is_accepted(
    tmp_path: Path,
    clock: FixedClock,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    p384 = ec.generate_private_key(ec.SECP384R1())
    jwks = [public_jwk(rsa_key, "k1"), public_jwk(ec_key, "e1"), public_jwk(p384, "e2")]
    write_jwks(tmp_path / "k8s-jwks.json", *jwks)
    issuer = k8s_issuer(algorithms=("RS256", "PS256", "ES256", "ES384"))
    attestor = JwtIssuerAttestor([issuer], clock, base=tmp_path)
    for alg, key, kid in [
        ("RS256", rsa_key, "k1"),
        ("PS256", rsa_key, "k1"),
        ("ES256", ec_key, "e1"),
        ("ES384", p384, "e2"),
    ]:
        assert attestor.attest(sign(key, k8s_claims(clock), alg, kid)).details["issuer"] == "k8s"


# --- refusals, each with its legitimate twin ------------------------------------------


def test_wrong_audience_is_refused(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, aud="other"))) == "jwt.audience"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, aud=["a", "b"]))) == "jwt.audience"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, aud=None))) == "jwt.audience"
    attestor.attest(sign(rsa_key, k8s_claims(clock, aud=AUDIENCE)))
    attestor.attest(sign(rsa_key, k8s_claims(clock, aud=["other", AUDIENCE])))


def test_expired_token_is_refused(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    now = int(clock.now())
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, exp=now))) == "jwt.expired"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, exp=now - 60))) == "jwt.expired"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, exp=None))) == "jwt.claims"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, exp="soon"))) == "jwt.claims"
    attestor.attest(sign(rsa_key, k8s_claims(clock, exp=now + 1)))


def test_token_from_the_future_is_refused_beyond_the_leeway(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    late = int(clock.now() + LEEWAY) + 1
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, nbf=late))) == "jwt.not_yet_valid"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, iat=late))) == "jwt.not_yet_valid"
    skewed = int(clock.now() + LEEWAY) - 1
    attestor.attest(sign(rsa_key, k8s_claims(clock, nbf=skewed, iat=skewed)))


def test_token_signed_by_an_unknown_key_is_refused(
    attestor: JwtIssuerAttestor,
    clock: FixedClock,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    claims = k8s_claims(clock)
    assert refused(attestor, sign(other_rsa_key, claims, kid="k1")) == "jwt.signature"
    assert refused(attestor, sign(other_rsa_key, claims, kid="k9")) == "jwt.unknown_key"
    attestor.attest(sign(rsa_key, claims, kid="k1"))


def test_tampered_claims_are_refused(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    token = sign(rsa_key, k8s_claims(clock))
    header, _, signature = token.split(".")
    other_ns = k8s_claims(clock, **{"kubernetes.io": {"namespace": "kube-system"}})
    forged = base64url_encode(json.dumps(other_ns).encode()).decode()
    assert refused(attestor, f"{header}.{forged}.{signature}") == "jwt.signature"
    attestor.attest(token)


def test_hmac_signed_with_the_public_key_is_refused(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    jwk_text = json.dumps(public_jwk(rsa_key, "k1")).encode()
    for secret in (pem, jwk_text):
        token = compact(
            {"alg": "HS256", "typ": "JWT", "kid": "k1"},
            k8s_claims(clock),
            partial(hmac.digest, secret, digest="sha256"),
        )
        assert refused(attestor, token) == "jwt.algorithm"
    attestor.attest(sign(rsa_key, k8s_claims(clock)))


def test_alg_none_is_refused(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    for alg in ("none", "None", "NONE"):
        token = compact({"alg": alg, "kid": "k1"}, k8s_claims(clock), lambda _data: b"")
        assert refused(attestor, token) == "jwt.algorithm"
    attestor.attest(sign(rsa_key, k8s_claims(clock)))


def test_algorithm_not_configured_for_the_issuer_is_refused(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    write_jwks(tmp_path / "k8s-jwks.json", public_jwk(rsa_key, "k1"))
    attestor = JwtIssuerAttestor([k8s_issuer(algorithms=("PS256",))], clock, base=tmp_path)
    assert refused(attestor, sign(rsa_key, k8s_claims(clock), "RS256")) == "jwt.algorithm"
    attestor.attest(sign(rsa_key, k8s_claims(clock), "PS256"))


def test_key_marked_for_another_algorithm_or_use_is_not_used(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "k8s-jwks.json"
    attestor = JwtIssuerAttestor([k8s_issuer()], clock, base=tmp_path)
    token = sign(rsa_key, k8s_claims(clock))
    for marks in ({"alg": "PS256"}, {"use": "enc"}, {"key_ops": ["encrypt"]}):
        write_jwks(path, public_jwk(rsa_key, "k1", **marks))
        assert refused(attestor, token) == "jwt.unknown_key"
    write_jwks(path, public_jwk(rsa_key, "k1", alg="RS256", key_ops=["verify"]))
    attestor.attest(token)


def test_rsa_key_under_2048_bits_is_refused(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    write_jwks(tmp_path / "k8s-jwks.json", public_jwk(weak, "weak"), public_jwk(rsa_key, "k1"))
    attestor = JwtIssuerAttestor([k8s_issuer()], clock, base=tmp_path)
    token = compact({"alg": "RS256", "kid": "weak"}, k8s_claims(clock), rs256(weak))
    assert refused(attestor, token) == "jwt.bad_key"
    attestor.attest(sign(rsa_key, k8s_claims(clock)))


def test_wrong_issuer_is_refused(
    tmp_path: Path,
    clock: FixedClock,
    rsa_key: rsa.RSAPrivateKey,
    ec_key: ec.EllipticCurvePrivateKey,
) -> None:
    write_jwks(tmp_path / "k8s-jwks.json", public_jwk(rsa_key, "k1"))
    write_jwks(tmp_path / "ci-jwks.json", public_jwk(ec_key, "c1"))
    ci = JwtIssuerConfig(
        name="ci", issuer=CI, audience=AUDIENCE, jwks_file="ci-jwks.json", algorithms=("ES256",)
    )
    attestor = JwtIssuerAttestor([k8s_issuer(), ci], clock, base=tmp_path)
    stranger = k8s_claims(clock, iss="https://evil.example")
    assert refused(attestor, sign(rsa_key, stranger)) == "jwt.unknown_issuer"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, iss=None))) == "jwt.unknown_issuer"
    listed = compact({"alg": "RS256", "kid": "k1"}, k8s_claims(clock, iss=[K8S]), rs256(rsa_key))
    assert refused(attestor, listed) == "jwt.unknown_issuer"
    slashed = sign(rsa_key, k8s_claims(clock, iss=K8S + "/"))
    assert refused(attestor, slashed) == "jwt.unknown_issuer"
    # a token claiming the k8s issuer but signed with the CI issuer's key
    assert refused(attestor, sign(ec_key, k8s_claims(clock), "ES256", "c1")) == "jwt.unknown_key"
    assert refused(attestor, sign(rsa_key, k8s_claims(clock, iss=CI))) == "jwt.algorithm"
    attestor.attest(sign(rsa_key, k8s_claims(clock)))
    ci_token = attestor.attest(sign(ec_key, k8s_claims(clock, iss=CI), "ES256", "c1"))
    assert ci_token.selectors == ("jwt_issuer:ci",)


def test_oversized_or_non_json_tokens_are_malformed(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    padded = k8s_claims(clock, padding="x" * 20000)
    assert refused(attestor, sign(rsa_key, padded)) == "jwt.malformed"
    nested = base64url_encode(b"[" * 10000).decode()
    payload = base64url_encode(json.dumps(k8s_claims(clock)).encode()).decode()
    assert refused(attestor, f"e30.{nested}.c2ln") == "jwt.malformed"
    assert refused(attestor, f"{nested}.{payload}.c2ln") == "jwt.malformed"
    infinite = base64url_encode(b'{"iss": "' + K8S.encode() + b'", "exp": Infinity}').decode()
    assert refused(attestor, f"e30.{infinite}.c2ln") == "jwt.malformed"
    attestor.attest(sign(rsa_key, k8s_claims(clock)))


def test_a_claims_segment_not_in_canonical_base64url_is_malformed(
    attestor: JwtIssuerAttestor, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    """The claims are read (for the issuer) as strictly as the JWS is verified: padding,
    characters outside base64url, unused bits set are malformed, whoever the issuer."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for iss in (K8S, "https://evil.example"):
        # claims padded to 2 bytes past a multiple of 3: one '=' would be valid base64, and
        # the last character's 2 low bits are unused
        tokens = (sign(rsa_key, k8s_claims(clock, iss=iss, pad="x" * n)) for n in range(3))
        token = next(t for t in tokens if len(t.split(".")[1]) % 4 == 3)
        header, body, signature = token.split(".")
        unused_bit = alphabet[alphabet.index(body[-1]) ^ 1]
        for bad in (body + "=", body[:5] + "+" + body[6:], body[:-1] + unused_bit):
            assert refused(attestor, f"{header}.{bad}.{signature}") == "jwt.malformed", bad[-3:]
        if iss == K8S:
            attestor.attest(token)


# --- the JWKS file ----------------------------------------------------------------------


def test_jwks_file_holding_private_key_material_is_refused(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "k8s-jwks.json"
    private = {**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "k1"}
    write_jwks(path, private)
    attestor = JwtIssuerAttestor([k8s_issuer()], clock, base=tmp_path)
    token = sign(rsa_key, k8s_claims(clock))
    assert refused(attestor, token) == "jwt.jwks_unavailable"
    write_jwks(path, public_jwk(rsa_key, "k1"))
    attestor.attest(token)


@pytest.mark.parametrize(
    "document",
    [
        "not json",
        "[]",
        '{"keys": {}}',
        '{"keys": [1]}',
        '{"keys": [{"kid": "k1"}]}',
        '{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}',
        '{"keys": [{"kty": "RSA", "kid": "k"}, {"kty": "EC", "kid": "k"}]}',
    ],
)
def test_malformed_jwks_file_is_refused(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey, document: str
) -> None:
    (tmp_path / "k8s-jwks.json").write_text(document)
    attestor = JwtIssuerAttestor([k8s_issuer()], clock, base=tmp_path)
    assert refused(attestor, sign(rsa_key, k8s_claims(clock))) == "jwt.jwks_unavailable"


def test_missing_jwks_file_fails_closed(
    tmp_path: Path, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    attestor = JwtIssuerAttestor([k8s_issuer()], clock, base=tmp_path)
    token = sign(rsa_key, k8s_claims(clock))
    assert refused(attestor, token) == "jwt.jwks_unavailable"
    write_jwks(tmp_path / "k8s-jwks.json", public_jwk(rsa_key, "k1"))
    attestor.attest(token)


# --- configuration --------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {"algorithms": ("HS256",)},
        {"algorithms": ("RS256", "none")},
        {"algorithms": ()},
        {"name": "has space"},
        {"jwks_cache_seconds": -1},
        {"jwks_file": None, "jwks_url": "http://issuer.example/jwks"},
        {"jwks_file": None, "jwks_url": "ftp://127.0.0.1/jwks"},
        {"jwks_file": None, "jwks_url": "not a url"},
    ],
)
def test_unsafe_issuer_configuration_is_refused(
    tmp_path: Path, clock: FixedClock, changes: dict[str, Any]
) -> None:
    with pytest.raises(InvalidInput):
        JwtIssuerAttestor([k8s_issuer(**changes)], clock, base=tmp_path)


def test_duplicate_issuers_are_refused(tmp_path: Path, clock: FixedClock) -> None:
    with pytest.raises(InvalidInput):
        JwtIssuerAttestor([k8s_issuer(), k8s_issuer(name="again")], clock, base=tmp_path)
    with pytest.raises(InvalidInput):
        JwtIssuerAttestor([k8s_issuer(), k8s_issuer(issuer=CI)], clock, base=tmp_path)
    JwtIssuerAttestor([k8s_issuer(), k8s_issuer(name="ci", issuer=CI)], clock, base=tmp_path)


def test_deployment_adds_the_attestor_only_when_issuers_are_configured(
    tmp_path: Path, clock: FixedClock
) -> None:
    stores = MemoryStores()
    audit = AuditLog(stores, clock)
    plain = Config(trust_domain="example.org")
    assert "jwt_issuer" not in [
        a.method for a in build_attestors(plain, stores, clock, tmp_path, audit)
    ]
    with_issuer = replace(plain, jwt_issuers=(k8s_issuer(),))
    methods = [a.method for a in build_attestors(with_issuer, stores, clock, tmp_path, audit)]
    assert methods.count("jwt_issuer") == 1


# --- the JWKS URL -----------------------------------------------------------------------


class JwksServer:
    """What the local JWKS endpoint serves, and how often it was asked."""

    def __init__(self) -> None:
        self.body = b'{"keys": []}'
        self.status = 200
        self.hits = 0
        self.url = ""

    def serve(self, *keys: dict[str, Any]) -> None:
        self.body = json.dumps({"keys": list(keys)}).encode()


@pytest.fixture
def jwks_server() -> Iterator[JwksServer]:
    state = JwksServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            state.hits += 1
            self.send_response(state.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(state.body)))
            self.end_headers()
            self.wfile.write(state.body)

        def log_message(self, format: str, *args: object) -> None:
            """Keep test output quiet."""

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/jwks"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def url_attestor(url: str, clock: FixedClock, cache: int = 300) -> JwtIssuerAttestor:
    issuer = k8s_issuer(jwks_file=None, jwks_url=url, jwks_cache_seconds=cache)
    return JwtIssuerAttestor([issuer], clock, base=Path())


def test_jwks_url_is_cached_for_the_configured_time(
    jwks_server: JwksServer, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve(public_jwk(rsa_key, "k1"))
    attestor = url_attestor(jwks_server.url, clock, cache=300)
    token = sign(rsa_key, k8s_claims(clock, exp=int(clock.now()) + 3600))
    attestor.attest(token)
    attestor.attest(token)
    assert jwks_server.hits == 1
    clock.t += 301
    attestor.attest(token)
    assert jwks_server.hits == 2


def test_rotated_key_is_found_by_a_rate_limited_refetch(
    jwks_server: JwksServer,
    clock: FixedClock,
    rsa_key: rsa.RSAPrivateKey,
    other_rsa_key: rsa.RSAPrivateKey,
) -> None:
    jwks_server.serve(public_jwk(rsa_key, "k1"))
    attestor = url_attestor(jwks_server.url, clock)
    attestor.attest(sign(rsa_key, k8s_claims(clock)))
    jwks_server.serve(public_jwk(rsa_key, "k1"), public_jwk(other_rsa_key, "k2"))
    clock.t += REFETCH_INTERVAL
    attestor.attest(sign(other_rsa_key, k8s_claims(clock), kid="k2"))
    assert jwks_server.hits == 2
    # an unknown kid right after a fetch does not reach the issuer again ...
    unknown = sign(other_rsa_key, k8s_claims(clock), kid="k3")
    assert refused(attestor, unknown) == "jwt.unknown_key"
    assert jwks_server.hits == 2
    # ... but does once the rate limit has passed
    clock.t += REFETCH_INTERVAL
    assert refused(attestor, sign(other_rsa_key, k8s_claims(clock), kid="k3")) == "jwt.unknown_key"
    assert jwks_server.hits == 3


def test_failed_fetches_fall_back_to_the_cache_until_it_is_ten_times_too_old(
    jwks_server: JwksServer, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    jwks_server.serve(public_jwk(rsa_key, "k1"))
    attestor = url_attestor(jwks_server.url, clock, cache=60)
    start = clock.now()
    token = sign(rsa_key, k8s_claims(clock, exp=int(start) + 3600))
    attestor.attest(token)
    jwks_server.status = 500
    clock.t = start + 61
    attestor.attest(token)  # refresh failed: the cached set is still used
    assert jwks_server.hits == 2
    clock.t = start + 80
    attestor.attest(token)  # failed fetches are not retried within the rate limit
    assert jwks_server.hits == 2
    clock.t = start + 601
    assert refused(attestor, token) == "jwt.jwks_unavailable"
    assert jwks_server.hits == 3
    jwks_server.status = 200
    clock.t += REFETCH_INTERVAL
    attestor.attest(token)
    assert jwks_server.hits == 4


def test_unreachable_or_unfit_jwks_url_fails_closed(
    jwks_server: JwksServer, clock: FixedClock, rsa_key: rsa.RSAPrivateKey
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    token = sign(rsa_key, k8s_claims(clock))
    down = url_attestor(f"http://127.0.0.1:{closed_port}/jwks", clock)
    assert refused(down, token) == "jwt.jwks_unavailable"
    jwks_server.serve({**RSAAlgorithm.to_jwk(rsa_key, as_dict=True), "kid": "k1"})
    assert refused(url_attestor(jwks_server.url, clock), token) == "jwt.jwks_unavailable"
    jwks_server.serve(public_jwk(rsa_key, "k1"))
    url_attestor(jwks_server.url, clock).attest(token)

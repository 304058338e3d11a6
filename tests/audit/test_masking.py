"""Masking: secrets never reach an audit event, yet stay correlatable by fingerprint."""

from __future__ import annotations

import ast
import re
import secrets
from collections.abc import Mapping
from pathlib import Path

import pytest

import zerolane
import zerolane.identity.admin as admin
import zerolane.identity.enforcement_points as enforcement_points
from zerolane.audit import masking
from zerolane.audit.masking import (
    CREDENTIAL_PREFIXES,
    fingerprint,
    mask,
    mask_details,
    mask_value,
)
from zerolane.audit.schema import EventFields
from zerolane.grants.hmac_keys import mint_api_key
from zerolane.identity.attestors import join_token
from zerolane.types import SystemClock

JWT = (
    "eyJhbGciOiJFUzI1NiIsImtpZCI6ImsxIiwidHlwIjoiSldUIn0"
    ".eyJzdWIiOiJzcGlmZmU6Ly9leGFtcGxlLm9yZy9hZ2VudCJ9"
    ".c2lnbmF0dXJlLWJ5dGVzLWhlcmU"
)
PEM = "-----BEGIN PRIVATE KEY-----\nMIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg\n-----END..."
MASKED = re.compile(r"^\*\*\*\(sha256:[0-9a-f]{12}\)$")


def is_masked(value: object) -> bool:
    return isinstance(value, str) and bool(MASKED.match(value))


@pytest.mark.parametrize(
    "value",
    [
        JWT,
        f"Bearer {JWT}",
        f"DPoP {JWT} and more text",
        PEM,
        "-----BEGIN EC PRIVATE KEY-----\n...",
    ],
)
def test_secret_shaped_values_are_masked_under_any_key(value: str) -> None:
    masked = mask({"note": value, "list": [value], "deep": {"deeper": [{"x": value}]}})
    assert isinstance(masked, dict)
    assert is_masked(masked["note"])
    assert is_masked(masked["list"][0])
    assert is_masked(masked["deep"]["deeper"][0]["x"])
    assert value not in repr(masked)


def test_a_bare_secret_shaped_string_is_masked() -> None:
    assert is_masked(mask(JWT))
    assert mask("spiffe://example.org/agent") == "spiffe://example.org/agent"


@pytest.mark.parametrize(
    "key",
    [
        "token",
        "join_token",
        "access_token",
        "client_secret",
        "password",
        "passwd",
        "credential",
        "Authorization",
        "private_key",
        "client_assertion",
        "jwt",
        "svid",
        "cookie",
        "api_key",
        "api-key",
        "apikey",
        "X-API-KEY",
        "dpop",
        "d",
        "k",
    ],
)
def test_values_under_secret_named_keys_are_masked(key: str) -> None:
    masked = mask({key: "hunter2", "method": "join_token"})
    assert isinstance(masked, dict)
    assert is_masked(masked[key])
    assert masked["method"] == "join_token"


@pytest.mark.parametrize(
    "key", ["kid", "kind", "method", "selectors", "subject", "aud", "x", "id", "dk", "key"]
)
def test_ordinary_keys_are_kept(key: str) -> None:
    assert mask({key: "visible"}) == {key: "visible"}


@pytest.mark.parametrize("key", ["token_id", "jti", "svid_id", "svid_kid", "svid_expires_at"])
def test_safe_identifier_keys_are_kept(key: str) -> None:
    assert mask({key: "abc123"}) == {key: "abc123"}


@pytest.mark.parametrize(
    ("kept", "masked"),
    [
        ("authorization_details", "authorization"),
        ("subject_token_type", "subject_token"),
        ("token_type", "token"),
        ("dpop_jkt", "dpop"),
        ("password_env", "password"),
        ("password_file", "password"),
        ("client_secret_id", "client_secret"),
        ("private_key_id", "private_key"),
        ("Api-Key-Id", "Api-Key"),
        ("svid_kid", "svid"),
    ],
)
def test_a_name_that_says_what_kind_where_or_which_secret_is_kept(kept: str, masked: str) -> None:
    """Even where masking goes by key names (free-form data), ``password_env`` names a
    variable and ``subject_token_type`` a type: kept. The secret itself is still masked."""
    assert mask({kept: "value", masked: "value"}) == {kept: "value", masked: mask_value("value")}
    assert mask({kept: JWT}) == {kept: mask_value(JWT)}  # the backstop still applies


def test_safe_key_still_masks_a_secret_shaped_value() -> None:
    masked = mask({"jti": JWT})
    assert isinstance(masked, dict)
    assert is_masked(masked["jti"])


def test_fingerprints_are_stable_and_distinct() -> None:
    assert fingerprint("s3cret") == fingerprint("s3cret") == fingerprint(b"s3cret")
    assert fingerprint("s3cret") != fingerprint("s3cret!")
    assert re.fullmatch(r"sha256:[0-9a-f]{12}", fingerprint("s3cret"))
    # the same secret under two names correlates
    assert mask({"password": "s3cret"}) == {"password": mask_value("s3cret")}
    assert mask({"token": "s3cret"}) == {"token": mask_value("s3cret")}
    assert mask_value("s3cret") == f"***({fingerprint('s3cret')})"
    assert "s3cret" not in mask_value("s3cret")


def test_nested_structures_are_walked_and_copied() -> None:
    data: dict[str, object] = {
        "outer": {"password": "p", "list": [{"token": "t"}, "plain", 3]},
        "tuple": ("a", JWT),
        "count": 3,
        "flag": True,
        "nothing": None,
    }
    masked = mask(data)
    assert masked == {
        "outer": {"password": mask_value("p"), "list": [{"token": mask_value("t")}, "plain", 3]},
        "tuple": ["a", mask_value(JWT)],
        "count": 3,
        "flag": True,
        "nothing": None,
    }
    # the input is untouched
    assert data["outer"] == {"password": "p", "list": [{"token": "t"}, "plain", 3]}


def test_everything_under_a_secret_key_is_masked_however_nested() -> None:
    masked = mask(
        {
            "client_secret": {"value": "s1", "history": ["s0", {"v": "s-1"}]},
            "tokens": ["t1", "t2"],
            "private_jwk": {"kty": "EC", "crv": "P-256", "d": "secret-scalar"},
        }
    )
    assert masked == {
        "client_secret": {
            "value": mask_value("s1"),
            "history": [mask_value("s0"), {"v": mask_value("s-1")}],
        },
        "tokens": [mask_value("t1"), mask_value("t2")],
        "private_jwk": {
            "kty": mask_value("EC"),
            "crv": mask_value("P-256"),
            "d": mask_value("secret-scalar"),
        },
    }


def test_bytes_are_decoded_and_masked_when_secret() -> None:
    assert mask({"note": b"plain"}) == {"note": "plain"}
    assert mask({"password": b"p"}) == {"password": mask_value("p")}


def test_non_string_keys_are_stringified() -> None:
    assert mask({1: "one"}) == {"1": "one"}


def reference_mask(data: object, secret: bool = False) -> object:
    """The masking as first written (a regex on every key and every string): the
    memoized key verdicts and the substring pre-checks must give exactly this."""
    secret_keys = re.compile(
        r"(token|secret|password|passwd|credential|authorization|private|assertion|"
        r"jwt|svid|cookie|api[_-]?key|^d$|^k$|dpop)",
        re.IGNORECASE,
    )
    safe_suffix = re.compile(r"[_-](type|details|env|file|id|kid|jkt)$", re.IGNORECASE)
    jwt = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
    pem = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
    own = re.compile(r"(?:zljt_|zla_|zlep_|zlk_)[A-Za-z0-9_.-]{16,}")
    safe = {"token_id", "jti", "svid_expires_at", "svid_id", "svid_kid"}

    def secret_key(key: str) -> bool:
        return (
            bool(key)
            and key not in safe
            and bool(secret_keys.search(key))
            and not safe_suffix.search(key)
        )

    if isinstance(data, Mapping):
        return {str(k): reference_mask(v, secret or secret_key(str(k))) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [reference_mask(v, secret) for v in data]
    if isinstance(data, str | bytes):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        shaped = jwt.search(text) or pem.search(text) or own.search(text)
        return mask_value(text) if secret or shaped else text
    return data


LOOKALIKES = [
    JWT,
    PEM,
    f"see {JWT} here",
    "-----BEGIN EC PRIVATE KEY-----",
    "-----BEGIN RSA PRIVATE KEY-----\nMII",
    "x-----BEGIN PRIVATE KEY-----",
    "eyJ.a.b",
    "eyJa.b",  # one dot: not a JWT
    "eyJ",
    "eyj.a.b",  # lowercase: not the shape
    "EYJ.a.b",
    "xeyJhbG.ciOi.Jsig",
    "-----BEGIN PUBLIC KEY-----",
    "-----BEGIN CERTIFICATE-----",
    "-----begin private key-----",
    "-----BEGIN  PRIVATE KEY-----",
    "-----BEGINPRIVATE KEY-----",
    "",
    "plain",
    "spiffe://example.org/agent",
    "https://gw/api/reports/q3",
    "zla_" + "A" * 43,
    "Authorization: Bearer zlep_" + "b" * 43,
    "zljt_abcdefghijklmnop",  # 16 characters: the shortest masked
    "zljt_abcdefghijklmno",  # 15: kept
    "zlk_t1.1800000000." + "c" * 43,
    "ZLA_" + "A" * 43,  # uppercase: not how they are minted
    "zl_3f9a0c1b2d4e5f607182",  # a PostgreSQL grant's role name
    "puzzle",
    "zlib_compression_level_nine",
    "zla_",
]


@pytest.mark.parametrize("value", LOOKALIKES)
def test_masking_is_unchanged_for_lookalikes_anywhere(value: str) -> None:
    keys = [
        "note",
        "url",
        "token",
        "jti",
        "d",
        "dk",
        "Api-Key",
        "token_type",
        "x" * 200,
        "x" * 200 + "token",
        "x" * 200 + "token_type",
    ]
    for _ in range(2):  # the second time under keys whose verdict is kept
        for key in keys:
            data = {
                key: value,
                "list": [value, {key: value}],
                "tuple": (value, b"raw " + value.encode()),
                "deep": {"deeper": [{key: [value]}], "n": 1, "f": 0.5, "b": True, "z": None},
                3: value,
            }
            assert mask(data) == reference_mask(data)
            assert mask(value, key) == reference_mask({key: value})[key]  # type: ignore[index]
            assert mask([value]) == reference_mask([value])


def test_a_secret_under_a_key_seen_with_plain_values_is_still_masked() -> None:
    assert mask({"note": "plain", "resource": "reports/q3"}) == {
        "note": "plain",
        "resource": "reports/q3",
    }
    masked = mask({"note": JWT, "resource": {"inner": PEM}, "x": [f"Bearer {JWT}"]})
    assert masked == {
        "note": mask_value(JWT),
        "resource": {"inner": mask_value(PEM)},
        "x": [mask_value(f"Bearer {JWT}")],
    }
    assert JWT not in repr(masked)
    assert "PRIVATE" not in repr(masked)


def test_key_verdicts_are_kept_for_a_bounded_number_of_short_names() -> None:
    kept = masking._memoized_key_verdict
    kept.cache_clear()  # only a memo: clearing it changes no verdict
    mask({})  # keeps the verdict of "" (the key of the top level)
    before = kept.cache_info().currsize
    long_secret = "x" * (masking._KEY_VERDICT_CHARS + 1) + "_password"
    long_plain = "y" * (masking._KEY_VERDICT_CHARS + 1)
    assert mask({long_secret: "s", long_plain: "p"}) == {
        long_secret: mask_value("s"),
        long_plain: "p",
    }
    assert kept.cache_info().currsize == before  # long names are tested, not kept
    assert kept.cache_info().maxsize == masking._KEY_VERDICTS
    fields = {f"field_{n}": "v" for n in range(masking._KEY_VERDICTS + 100)}
    assert mask(fields | {"password": "p"}) == fields | {"password": mask_value("p")}
    assert kept.cache_info().currsize == masking._KEY_VERDICTS
    assert mask({"field_0": "v", "password": "p"}) == {"field_0": "v", "password": mask_value("p")}


# ---- masking by declared fields ------------------------------------------------------------


def by_fields(fields: EventFields, details: Mapping[str, object]) -> object:
    """``mask_details`` for an event kind declaring ``fields``."""
    return masking._by_node(details, masking._compile(fields), "details")


def declared(
    clear: tuple[str, ...] = (), free: tuple[str, ...] = (), secret: tuple[str, ...] = ()
) -> EventFields:
    return EventFields(frozenset(clear), frozenset(free), frozenset(secret))


def test_declared_secret_paths_are_masked_and_clear_ones_kept_whatever_their_names() -> None:
    fields = declared(
        clear=("details.authorization_details", "details.token_type", "details.note"),
        secret=("details.code", "details.nested.value"),
    )
    details = {
        "authorization_details": [{"type": "t", "actions": ["read"]}],
        "token_type": "Bearer",
        "note": "plain",
        "code": "s3cret",  # no secret-looking name, but declared secret
        "nested": {"value": "s3cret", "other": "plain", "password": "p"},
    }
    assert by_fields(fields, details) == {
        "authorization_details": [{"type": "t", "actions": ["read"]}],
        "token_type": "Bearer",
        "note": "plain",
        "code": mask_value("s3cret"),
        # on the way to a secret path, undeclared members are free: names count
        "nested": {"value": mask_value("s3cret"), "other": "plain", "password": mask_value("p")},
    }


def test_a_secret_path_below_a_clear_member_is_masked() -> None:
    fields = declared(clear=("details.requested",), secret=("details.requested.actor_token",))
    details = {"requested": {"actor_token": "t", "subject_token_type": "urn:x", "password": "p"}}
    assert by_fields(fields, details) == {
        "requested": {
            "actor_token": mask_value("t"),
            "subject_token_type": "urn:x",
            "password": "p",  # declared clear: names do not count
        }
    }


def test_a_secret_member_is_masked_whole_and_a_clear_one_is_walked_for_the_backstop() -> None:
    fields = declared(clear=("details.scope",), secret=("details.credential",))
    details = {
        "credential": {"user": "u", "pass": "p", "ttl": 60, "list": ["a", b"b"]},
        "scope": {"list": ["ok", JWT], "deep": {"pem": PEM, "n": 1}, "t": ("x", b"y")},
    }
    assert by_fields(fields, details) == {
        "credential": {
            "user": mask_value("u"),
            "pass": mask_value("p"),
            "ttl": 60,
            "list": [mask_value("a"), mask_value("b")],
        },
        "scope": {
            "list": ["ok", mask_value(JWT)],
            "deep": {"pem": mask_value(PEM), "n": 1},
            "t": ["x", "y"],
        },
    }


def test_paths_go_through_lists() -> None:
    fields = declared(clear=("details.entries",), secret=("details.entries.secret",))
    details = {"entries": [{"secret": "s1", "id": "a"}, {"secret": "s2", "id": "b"}, "plain"]}
    assert by_fields(fields, details) == {
        "entries": [
            {"secret": mask_value("s1"), "id": "a"},
            {"secret": mask_value("s2"), "id": "b"},
            "plain",
        ]
    }


def test_free_and_undeclared_members_are_masked_by_names() -> None:
    fields = declared(clear=("details.tool",), free=("details.arguments",))
    details = {
        "tool": "query",
        "arguments": {"sql": "select 1", "password": "p", "auth": {"api_key": "k"}},
        "api_key": "k",  # undeclared
        "extra": "plain",  # undeclared
        "client_secret": {"value": "v"},  # undeclared, everything under it
    }
    assert by_fields(fields, details) == {
        "tool": "query",
        "arguments": {
            "sql": "select 1",
            "password": mask_value("p"),
            "auth": {"api_key": mask_value("k")},
        },
        "api_key": mask_value("k"),
        "extra": "plain",
        "client_secret": {"value": mask_value("v")},
    }


def test_an_undeclared_parent_named_like_a_secret_masks_its_whole_subtree() -> None:
    fields = declared(clear=("details.client_secret.kind",))
    assert by_fields(fields, {"client_secret": {"kind": "k", "value": "v"}}) == {
        "client_secret": {"kind": mask_value("k"), "value": mask_value("v")}
    }


def test_a_kind_that_is_not_declared_is_masked_by_names_as_before() -> None:
    details = {
        "requested": {"subject_token": "t", "authorization": "a", "scope": ["read"]},
        "password": "p",
        "note": JWT,
        "plain": "plain",
    }
    assert mask_details("no.such.kind", details) == mask(details)
    assert mask_details("no.such.kind", details) == {
        "requested": {
            "subject_token": mask_value("t"),
            "authorization": mask_value("a"),
            "scope": ["read"],
        },
        "password": mask_value("p"),
        "note": mask_value(JWT),
        "plain": "plain",
    }


def test_the_details_are_copied_never_changed() -> None:
    details: dict[object, object] = {"requested": {"subject_token": "t"}, "jkt": "j", 3: "x"}
    masked = mask_details("task.delegate", details)  # type: ignore[arg-type]
    assert masked == {"requested": {"subject_token": mask_value("t")}, "jkt": "j", "3": "x"}
    assert details == {"requested": {"subject_token": "t"}, "jkt": "j", 3: "x"}


@pytest.mark.parametrize(
    "path", ["subject", "details", "details.", "details..x", "actor.id", "detailsx.y", ""]
)
def test_a_declared_field_outside_details_is_refused(path: str) -> None:
    with pytest.raises(ValueError, match="under 'details'"):
        masking._compile(declared(clear=(path,)))


def minted_credentials() -> list[str]:
    """One credential of each kind zerolane mints, as it mints them."""
    clock = SystemClock()
    return [
        join_token.new_join_token("spiffe://example.org/agent", 600, clock).token,
        admin.PREFIX + secrets.token_urlsafe(32),
        enforcement_points.PREFIX + secrets.token_urlsafe(32),
        mint_api_key(b"k" * 32, "tsk_" + secrets.token_urlsafe(16), 1_800_000_000),
        mint_api_key(b"k" * 32, "t", 1_800_000_000),  # the shortest task id
    ]


@pytest.mark.parametrize("credential", minted_credentials())
def test_zerolane_credentials_are_masked_even_in_clear_fields(credential: str) -> None:
    fields = declared(clear=("details.url", "details.note", "details.list"))
    details = {
        "url": f"https://gw.example/hook?key={credential}",
        "note": credential,
        "list": ["plain", f"Bearer {credential}"],
    }
    masked = by_fields(fields, details)
    assert masked == {
        "url": mask_value(details["url"]),  # type: ignore[arg-type]
        "note": mask_value(credential),
        "list": ["plain", mask_value(f"Bearer {credential}")],
    }
    assert credential not in repr(masked)
    # and wherever else masking runs: an event's subject, a log line's data
    assert is_masked(mask(credential))
    assert is_masked(mask({"note": [credential]})["note"][0])  # type: ignore[index]
    # a declared kind's clear member too (a decision's URL)
    decision = mask_details("decision", {"url": f"https://gw.example/?k={credential}"})
    assert is_masked(decision["url"])  # type: ignore[index]


@pytest.mark.parametrize(
    "kept",
    [
        "puzzle",
        "dazzling zlatan",
        "zlib_compression_level_nine",  # letters after zl, but no credential prefix
        "zl_3f9a0c1b2d4e5f607182",  # a PostgreSQL grant's role name (not a credential)
        "zla_",
        "zljt_short",
        "ZLA_" + "A" * 43,
        "the zlep_ prefix marks an enforcement point credential",
    ],
)
def test_ordinary_text_with_zl_is_kept_in_clear_fields(kept: str) -> None:
    fields = declared(clear=("details.note",))
    assert by_fields(fields, {"note": kept}) == {"note": kept}
    assert mask(kept) == kept


def test_every_credential_prefix_minted_under_src_is_masked() -> None:
    """A new ``PREFIX = "zl<letters>_"`` (a credential zerolane mints) must be added to
    :data:`CREDENTIAL_PREFIXES`, or its credentials would reach the audit log."""
    src = Path(zerolane.__file__).parent
    minted: dict[str, str] = {}
    for path in sorted(src.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)):
                continue
            value = node.value.value
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            if (
                isinstance(value, str)
                and re.fullmatch(r"zl[a-z]+_", value)
                and any(n.endswith("PREFIX") for n in names)
            ):
                minted[value] = str(path.relative_to(src))
    assert set(minted) >= {"zljt_", "zla_", "zlep_", "zlk_"}  # the scan finds them
    assert set(minted) <= set(CREDENTIAL_PREFIXES), minted

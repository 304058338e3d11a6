"""Mask secrets before they reach an audit event or a log line.

An event's ``details`` are masked by the declared fields of its kind
(:mod:`zerolane.audit.schema`, :func:`mask_details`): its ``secret`` paths are masked,
its ``clear`` ones kept, and ``free`` or undeclared members (and every member of a kind
not declared) masked under secret-looking key names, as :func:`mask` does. Everywhere,
a string that holds a JWT/JWS compact serialization, a PEM private key or one of
zerolane's own credentials (:data:`CREDENTIAL_PREFIXES`: join tokens, admin and
enforcement point credentials, per-task API keys) is masked too (the backstop). A
masked string becomes ``"***"`` plus a short SHA-256 fingerprint, so an investigation
can still correlate two events about the same secret without it.

Every decision is masked on the request path, so the tests are kept cheap: the declared
fields are compiled once into a tree looked up by member name, a key name's verdict is
memoized (the same few names recur), and a string is only searched with a regex when it
holds the literal that each secret shape starts with.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from zerolane.audit.schema import DETAILS, EVENT_FIELDS, EventFields

_SECRET_KEYS = re.compile(
    r"(token|secret|password|passwd|credential|authorization|private|assertion|"
    r"jwt|svid|cookie|api[_-]?key|^d$|^k$|dpop)",
    re.IGNORECASE,
)
_JWT_SHAPE = re.compile(r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*\.[A-Za-z0-9_-]*")
_PEM_SHAPE = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")
#: The prefixes zerolane mints its own credentials with: join tokens
#: (``identity.attestors.join_token``), admin credentials (``identity.admin``),
#: enforcement point credentials (``identity.enforcement_points``) and per-task HMAC API
#: keys (``grants.hmac_keys``). ``tests/audit/test_masking.py`` checks that every
#: ``PREFIX = "zl<letters>_"`` under ``src`` is listed here.
CREDENTIAL_PREFIXES = ("zljt_", "zla_", "zlep_", "zlk_")
#: one of them and at least 16 credential characters (a minted one has 43 random ones,
#: an API key its task id, expiry and MAC): ``zla_`` alone or a ``zl_`` role name is not
#: a credential
_CREDENTIAL_SHAPE = re.compile(
    "(?:" + "|".join(re.escape(p) for p in CREDENTIAL_PREFIXES) + r")[A-Za-z0-9_.-]{16,}"
)
#: the literal each shape above starts with: no match is possible without it
_JWT_START = "eyJ"
_PEM_START = "-----BEGIN "
_CREDENTIAL_START = "zl"
#: Keys whose values are identifiers safe to keep even though their name matches.
_SAFE_KEYS = frozenset({"token_id", "jti", "svid_expires_at", "svid_id", "svid_kid"})
#: Names that say what kind of thing, where or which one, not the secret itself
#: (``token_type``, ``authorization_details``, ``dpop_jkt``, ``password_env``,
#: ``password_file``, ``client_secret_id``): kept even though their name matches.
_SAFE_SUFFIX = re.compile(r"[_-](type|details|env|file|id|kid|jkt)$", re.IGNORECASE)
#: how many key names keep their verdict, and the longest name kept (bounded memory,
#: whatever keys untrusted input brings)
_KEY_VERDICTS = 4096
_KEY_VERDICT_CHARS = 128
#: exact types that hold nothing to mask
_PLAIN: frozenset[type] = frozenset({int, float, bool, type(None)})


def fingerprint(secret: str | bytes) -> str:
    raw = secret.encode() if isinstance(secret, str) else secret
    return "sha256:" + hashlib.sha256(raw).hexdigest()[:12]


def mask_value(value: str) -> str:
    return f"***({fingerprint(value)})"


def _looks_secret(value: str) -> bool:
    return (
        (_JWT_START in value and _JWT_SHAPE.search(value) is not None)
        or (_PEM_START in value and _PEM_SHAPE.search(value) is not None)
        or (_CREDENTIAL_START in value and _CREDENTIAL_SHAPE.search(value) is not None)
    )


def _key_verdict(key: str) -> bool:
    return (
        bool(key)
        and key not in _SAFE_KEYS
        and _SECRET_KEYS.search(key) is not None
        and _SAFE_SUFFIX.search(key) is None
    )


_memoized_key_verdict = functools.lru_cache(maxsize=_KEY_VERDICTS)(_key_verdict)


def _secret_key(key: str) -> bool:
    if len(key) <= _KEY_VERDICT_CHARS:
        return _memoized_key_verdict(key)
    return _key_verdict(key)


def mask(data: object, key: str = "") -> object:
    """Return a copy of ``data`` with secrets masked (recursing into dicts and lists),
    for data without declared fields: by key names, and the backstop.

    Everything under a secret-looking key is secret, however deeply nested:
    ``{"client_secret": {"value": ...}}`` masks ``value`` too.
    """
    return _mask(data, _secret_key(key))


def _mask(data: object, secret: bool) -> object:
    # exact built-in types first: the common cases skip the slower Mapping (ABC) check
    if type(data) is str:
        return mask_value(data) if secret or _looks_secret(data) else data
    if type(data) in _PLAIN:
        return data
    if type(data) is list:
        return [_mask(v, secret) for v in data]
    if isinstance(data, dict | Mapping):
        return {str(k): _mask(v, secret or _secret_key(str(k))) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_mask(v, secret) for v in data]
    if isinstance(data, str | bytes):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        if secret or _looks_secret(text):
            return mask_value(text)
        return text
    return data


def _backstop(data: object) -> object:
    """A copy of ``data`` (as :func:`mask` copies) with only secret-shaped strings masked."""
    if type(data) is str:
        return mask_value(data) if _looks_secret(data) else data
    if type(data) in _PLAIN:
        return data
    if type(data) is list:
        return [_backstop(v) for v in data]
    if isinstance(data, dict | Mapping):
        return {str(k): _backstop(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_backstop(v) for v in data]
    if isinstance(data, str | bytes):
        text = data if isinstance(data, str) else data.decode("utf-8", "replace")
        return mask_value(text) if _looks_secret(text) else text
    return data


class _Rule(enum.Enum):
    SECRET = "secret"  # noqa: S105 (a rule's name): everything masked
    CLEAR = "clear"  # the backstop only
    FREE = "free"  # secret-looking key names masked, and the backstop


@dataclass(slots=True)
class _Node:
    """One declared path's step: the rule for it and its members not named in ``below``."""

    rule: _Rule
    below: dict[str, _Node] = field(default_factory=dict)


def _compile(fields: EventFields) -> _Node:
    """The tree of ``fields``' paths below ``details`` (undeclared members are free)."""
    root = _Node(_Rule.FREE)
    # the clear paths first: a secret path below a clear one stays secret
    ordered: list[tuple[str, _Rule]] = [(p, _Rule.CLEAR) for p in sorted(fields.clear)]
    ordered += [(p, _Rule.FREE) for p in sorted(fields.free)]
    ordered += [(p, _Rule.SECRET) for p in sorted(fields.secret)]
    for path, rule in ordered:
        top, *steps = path.split(".")
        if top != DETAILS or not steps or not all(steps):
            raise ValueError(f"a declared audit field is a path under 'details', not {path!r}")
        node = root
        for step in steps:
            node = node.below.setdefault(step, _Node(node.rule))
        node.rule = rule
    return root


_SECRET, _CLEAR, _FREE = _Rule.SECRET, _Rule.CLEAR, _Rule.FREE
_PLANS = {kind: _compile(fields) for kind, fields in EVENT_FIELDS.items()}
#: a kind nobody declared: every member free (the key-name heuristic and the backstop)
_UNDECLARED = _Node(_Rule.FREE)


def _by_rule(data: object, rule: _Rule, key: str) -> object:
    if rule is _CLEAR:
        return _backstop(data)
    if rule is _SECRET:
        return _mask(data, True)
    return _mask(data, _secret_key(key))


def _by_node(data: object, node: _Node, key: str) -> object:
    if not node.below or (node.rule is _FREE and _secret_key(key)):
        return _by_rule(data, node.rule, key)
    if node.rule is _SECRET:
        return _mask(data, True)
    if isinstance(data, dict | Mapping):
        return _members(data, node)
    if isinstance(data, list | tuple):
        return [_by_node(v, node, key) for v in data]
    return _by_rule(data, node.rule, key)


def _members(data: Mapping[object, object], node: _Node) -> dict[str, object]:
    # the request path's loop (a decision's dozen members): a clear string member, the
    # common case, is tested right here without a call
    below, default, out = node.below, node.rule, {}
    for k, v in data.items():
        name = k if type(k) is str else str(k)
        step = below.get(name)
        if step is not None and step.below:
            out[name] = _by_node(v, step, name)
            continue
        rule = default if step is None else step.rule
        if rule is _CLEAR and type(v) is str:
            # the shapes' literals tested inline: an ordinary string costs no call
            shaped = _JWT_START in v or _PEM_START in v or _CREDENTIAL_START in v
            out[name] = mask_value(v) if shaped and _looks_secret(v) else v
        elif rule is _CLEAR and type(v) in _PLAIN:
            out[name] = v
        else:
            out[name] = _by_rule(v, rule, name)
    return out


def mask_details(kind: str, details: Mapping[str, object]) -> object:
    """A masked copy of an event's ``details``, by the declared fields of ``kind``."""
    return _by_node(details, _PLANS.get(kind, _UNDECLARED), DETAILS)

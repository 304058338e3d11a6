"""Reading a configuration document into its settings types, every problem at once.

A document is parsed by its own library (``tomllib``, PyYAML, ``json``); its settings
types are frozen dataclasses whose fields use the aliases here (:data:`Int`, :data:`Str`,
... strict: ``"8700"`` is no port, ``true`` no number) and whose
``__pydantic_config__`` is :data:`STRICT` (a key the type does not name is refused).
:func:`validate` checks a whole document with pydantic and refuses it once, listing
every problem on a line of its own::

    zerolane.toml: server.port: must be an integer, not str
    zerolane.toml: svid.ttl: unknown key

Built in code, a settings type is not checked (a test's deliberately bad playbook, a
config made from parts): the rules are the documents'.

A problem's reason id is ``<scheme>.<kind>``: ``unknown_key``, ``missing`` or ``type``
for the shape of the document, or the id a rule of the type names with :func:`refuse`
(``config.tls``, ``config.url``...). A refusal listing problems of several kinds has
the reason ``<scheme>.invalid``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, TypeVar, Union, get_args, get_origin, get_type_hints

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Strict,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from zerolane.errors import InvalidInput
from zerolane.types import Sensitivity

_T = TypeVar("_T")

#: the pydantic config of every settings type: unknown keys are refused
STRICT = ConfigDict(extra="forbid")
#: strict scalars: no coercion from another type (``"5"`` is no ``Int``, ``true`` no ``Int``)
Int = Annotated[int, Strict()]
Str = Annotated[str, Strict()]
Bool = Annotated[bool, Strict()]
#: a number: an integer or a float, never a boolean
Float = Annotated[float, Strict()]
#: a list of strings (a TOML array, a YAML sequence), held as a tuple
Texts = tuple[Str, ...]

#: what a document's value must be, by pydantic's error type
_EXPECTED = {
    "int_type": "an integer",
    "int_from_float": "an integer",
    "string_type": "a string",
    "bool_type": "true or false",
    "float_type": "a number",
    "dict_type": "a table",
    "dataclass_type": "a table",
    "dataclass_exact_type": "a table",
    "model_type": "a table",
    "model_attributes_type": "a table",
    "list_type": "a list",
    "tuple_type": "a list",
    "none_required": "empty",
}
#: a key the type does not name (``invalid_key``: not even a string, a YAML ``1:``)
_UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument", "invalid_key")
_MISSING = ("missing", "missing_argument", "missing_keyword_only_argument")


def refuse(reason: str, message: str) -> PydanticCustomError:
    """A rule's refusal, to ``raise`` in a settings type's validator: ``reason`` is the
    full reason id (``config.tls``), ``message`` what is wrong (the problem's dotted
    name and its file are put in front)."""
    # no context: the message is not formatted, a path template's ``{var}`` stays as is
    return PydanticCustomError(reason, message)


def reason(rid: str) -> WrapValidator:
    """Annotates a type whose wrong values are refused as ``rid`` (a wrong type stays
    ``<scheme>.type``): ``Annotated[Literal["sync", "async"], reason("config.audit_mode")]``."""

    def wrap(value: object, handler: ValidatorFunctionWrapHandler) -> object:
        try:
            return handler(value)
        except ValidationError as err:
            first = err.errors(include_url=False)[0]
            if first["type"] in _EXPECTED or "." in first["type"]:
                raise
            raise refuse(rid, _wrong(first, value)) from None

    return WrapValidator(wrap)


_BOUNDS = {
    "greater_than": "more than {gt}",
    "greater_than_equal": "at least {ge}",
    "less_than": "less than {lt}",
    "less_than_equal": "at most {le}",
}


#: a refused string longer than this is not echoed in an error (it may be a secret
#: written under the wrong key): its length is
MAX_SHOWN = 32


def _shown(value: object) -> str:
    """A refused value as an error names it."""
    if isinstance(value, str) and len(value) > MAX_SHOWN:
        return f"a {len(value)}-character value"
    return repr(value)


def _wrong(error: ErrorDetails, value: object) -> str:
    """What a value in the right type but out of bounds must be."""
    ctx: dict[str, Any] = dict(error.get("ctx") or {})
    if error["type"] in ("literal_error", "enum") and "expected" in ctx:
        return f"must be one of {ctx['expected']}, not {_shown(value)}"
    if error["type"] in _BOUNDS:
        return f"must be {_BOUNDS[error['type']].format(**ctx)}, not {value!r}"
    return error["msg"]


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else str(value)


def within(rid: str, low: float, high: float, unit: str = "") -> AfterValidator:
    """Annotates a number that must be ``low`` to ``high`` (both included), else is
    refused as ``rid``."""

    def check(value: float) -> float:
        if not low <= value <= high:
            raise refuse(rid, f"must be {_number(low)} to {_number(high)}{unit}, not {value!r}")
        return value

    return AfterValidator(check)


def up_to(rid: str, high: float, unit: str = "") -> AfterValidator:
    """Annotates a number that must be over 0 and at most ``high``, else is refused as
    ``rid``."""

    def check(value: float) -> float:
        if not 0 < value <= high:
            raise refuse(rid, f"must be over 0 and at most {_number(high)}{unit}, not {value!r}")
        return value

    return AfterValidator(check)


def _label(value: str) -> str:
    try:
        Sensitivity.parse(value)
    except ValueError as err:
        raise refuse("config.sensitivity", str(err)) from None
    return value


def _level(value: object) -> object:
    """A sensitivity label, parsed; one built in code passes as it is. Anything else is
    refused: pydantic's lax enum check would take ``false`` or ``0`` for ``public`` and
    silently lower a tool's sensitivity."""
    if isinstance(value, Sensitivity):
        return value
    if not isinstance(value, str):
        labels = ", ".join(level.label for level in Sensitivity)
        raise refuse("config.type", f"must be a sensitivity label ({labels}), not {_kind(value)}")
    try:
        return Sensitivity.parse(value)
    except ValueError as err:
        raise refuse("config.sensitivity", str(err)) from None


#: a sensitivity label as written (``internal``), checked
SensitivityLabel = Annotated[Str, AfterValidator(_label)]
#: a sensitivity, written as its label
Level = Annotated[Sensitivity, BeforeValidator(_level)]


def _given(value: str) -> str:
    if not value:
        raise refuse("config.missing", "is required, not empty")
    return value


#: a string that must be given, not empty (``config.missing``)
Required = Annotated[Str, AfterValidator(_given)]


def base_of(info: ValidationInfo) -> Path | None:
    """The folder relative file names in the document start from, if any."""
    base = (info.context or {}).get("base")
    return base if isinstance(base, Path) else None


def dotted(loc: Sequence[int | str]) -> str:
    """``('servers', 0, 'tools', 'x')`` -> ``servers[0].tools.x``."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {dict: "table", list: "list", bool: "boolean"}.get(type(value), type(value).__name__)


def _bare(hint: Any) -> Any:
    """``hint`` without ``Annotated`` and ``| None``."""
    while True:
        if get_origin(hint) is Annotated:
            hint = get_args(hint)[0]
        elif get_origin(hint) in (Union, UnionType):
            hint = next(arg for arg in get_args(hint) if arg is not type(None))
        else:
            return hint


def _known(kind: Any, loc: Sequence[int | str]) -> str:
    """`` (known: a, b)``: the keys of the table at ``loc`` in a ``kind``, when it is a
    settings type."""
    hint = _bare(kind)
    for part in loc:
        if dataclasses.is_dataclass(hint) and isinstance(part, str):
            hints = get_type_hints(hint, include_extras=True)
            if part not in hints:
                return ""
            hint = _bare(hints[part])
        elif get_origin(hint) is tuple and isinstance(part, int):
            hint = _bare(get_args(hint)[0])
        elif get_origin(hint) is dict and isinstance(part, str):
            hint = _bare(get_args(hint)[1])
        else:
            return ""
    if not dataclasses.is_dataclass(hint):
        return ""
    return f" (known: {', '.join(f.name for f in dataclasses.fields(hint))})"


def _problem(
    error: ErrorDetails,
    scheme: str,
    at: Sequence[int | str],
    kind: Any = None,
    kinds: Mapping[str, str] | None = None,
) -> tuple[str, str]:
    """(reason id, ``dotted: what is wrong``) of one pydantic error in a ``kind``, its
    location under ``at``; ``kinds`` renames the generic problems (``type``, ``table``:
    a value that is no table, ``type`` unless named)."""
    kinds = kinds or {}
    own = [p for p in error["loc"] if not _is_branch(p)]
    problem, loc = error["type"], [*at, *own]
    if problem in _UNKNOWN:
        known = _known(kind, own[:-1]) if kind is not None else ""
        return f"{scheme}.unknown_key", f"{dotted(loc)}: unknown key{known}"
    if problem in _MISSING:
        return f"{scheme}.missing", f"{dotted(loc)}: is required"
    where = f"{dotted(loc)}: " if loc else ""
    if problem in _EXPECTED:
        expected = _EXPECTED[problem]
        generic = kinds.get("type", "type")
        if expected == "a table":
            generic = kinds.get("table", generic)
            if generic != "type":
                expected = "a mapping"
        return f"{scheme}.{generic}", f"{where}must be {expected}, not {_kind(error['input'])}"
    if "." in problem:  # a rule's own refusal (:func:`refuse`)
        return problem, f"{where}{error['msg']}"
    return f"{scheme}.value", f"{where}{error['msg']}"


def _is_branch(part: int | str) -> bool:
    """A validator pydantic names in a location (``function-after[...]``)."""
    return isinstance(part, str) and "[" in part and part.endswith("]")


_ADAPTERS: dict[object, TypeAdapter[Any]] = {}


def _adapter(kind: Any) -> TypeAdapter[Any]:
    """The adapter of ``kind``, made once (its schema is built on first use)."""
    adapter = _ADAPTERS.get(kind)
    if adapter is None:
        adapter = _ADAPTERS[kind] = TypeAdapter(kind)
    return adapter


def validate(
    kind: type[_T],
    doc: object,
    *,
    source: str | None = None,
    scheme: str = "config",
    context: Mapping[str, object] | None = None,
    at: Sequence[int | str] = (),
    kinds: Mapping[str, str] | None = None,
) -> _T:
    """``doc`` (as its library parsed it) as a ``kind``, or one
    :class:`~zerolane.errors.InvalidInput` listing every problem, one line each, each
    line naming ``source`` (the file) and the value's dotted name (under ``at``, where
    ``doc`` is in its document: ``("tls",)``)."""
    try:
        value: _T = _adapter(kind).validate_python(doc, context=dict(context or {}))
    except ValidationError as err:
        raise problems(err, source=source, scheme=scheme, at=at, kind=kind, kinds=kinds) from None
    return value


def problems(
    err: ValidationError,
    *,
    source: str | None,
    scheme: str,
    at: Sequence[int | str] = (),
    kind: Any = None,
    kinds: Mapping[str, str] | None = None,
) -> InvalidInput:
    """A pydantic refusal (of validating a ``kind``) as one
    :class:`~zerolane.errors.InvalidInput`."""
    errors = err.errors(include_url=False)
    found = [_problem(error, scheme, at, kind, kinds) for error in errors]
    return combine(found, source=source, scheme=scheme)


def combine(found: Sequence[tuple[str, str]], *, source: str | None, scheme: str) -> InvalidInput:
    """One refusal of (reason, message) problems: their reason when they share one,
    else ``<scheme>.invalid``; one line each, after ``source``."""
    reasons = {reason for reason, _ in found}
    reason = reasons.pop() if len(reasons) == 1 else f"{scheme}.invalid"
    prefix = f"{source}: " if source else ""
    return InvalidInput(reason, "\n".join(f"{prefix}{message}" for _, message in found))

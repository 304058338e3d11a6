"""Playbooks: admin-registered intent templates, the most a task of one kind may do.

A playbook file (YAML, TOML or JSON) is parsed by its library and checked by
:class:`Playbook`, a strict pydantic dataclass (:mod:`zerolane.settings`): every problem
is refused at once as one :class:`InvalidInput`, one line each naming the file and the
dotted field, each with a stable reason (``playbook.field``, ``playbook.ttl`` ...;
``playbook.invalid`` for problems of several kinds). Lists are de-duplicated and
sorted, so :func:`playbook_to_json` gives one canonical document per playbook.
The format is documented in ``docs/playbooks.md``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import MISSING, dataclass, fields
from os import PathLike
from pathlib import Path
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import AfterValidator, BeforeValidator, ValidationError, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError

from zerolane.errors import InvalidInput
from zerolane.grants.broker import GrantTemplate, parse_template
from zerolane.identity.selectors import parse_selector
from zerolane.identity.spiffe_id import SCHEME, SpiffeId, parse_trust_domain, parse_workload_id
from zerolane.policy.patterns import matches, parse_pattern
from zerolane.settings.validate import STRICT, refuse, validate
from zerolane.types import Sensitivity

# Used with ``fullmatch``: ``$`` would also match before a trailing newline.
NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
ACTION = re.compile(r"[A-Za-z0-9_.:/-]+")
DESTINATION = re.compile(r"[A-Za-z0-9._:-]+")
_SPIFFE_SEGMENT = re.compile(r"[a-zA-Z0-9._-]+")
_DURATION = re.compile(r"([0-9]{1,9})([smhd]?)")
UNITS = {"d": 86400, "h": 3600, "m": 60, "s": 1}

MAX_DESCRIPTION = 1000
MAX_ITEMS = 256  # entries in any one list
MAX_ITEM_LEN = 256  # characters of an action or destination
MAX_TTL = 7 * 86400
MAX_CALLS = 1_000_000
MAX_DEPTH = 8
MAX_FILE_BYTES = 1 << 20


def _fail(reason: str, detail: str) -> PydanticCustomError:
    return refuse(f"playbook.{reason}", detail)


def _text(pattern: re.Pattern[str] | None) -> BeforeValidator:
    """A string (``pattern``: matching it; else 1..1000 characters, not blank)."""

    def check(value: object) -> str:
        if not isinstance(value, str):
            raise _fail("field", f"must be a string, not {_kind(value)}")
        if pattern is not None and not pattern.fullmatch(value):
            raise _fail("field", f"{value!r} must match {pattern.pattern}")
        if pattern is None and not (value.strip() and len(value) <= MAX_DESCRIPTION):
            raise _fail("field", f"must be 1..{MAX_DESCRIPTION} characters, not blank")
        return value

    return BeforeValidator(check)


def _list(low: int) -> BeforeValidator:
    """A list of ``low``..256 entries."""

    def check(value: object) -> object:
        if not isinstance(value, list | tuple) or not low <= len(value) <= MAX_ITEMS:
            raise _fail("field", f"must be a list of {max(low, 1)}..{MAX_ITEMS} strings")
        return value

    return BeforeValidator(check)


def _item(check: Callable[[str], str]) -> BeforeValidator:
    def read(value: object) -> str:
        if not isinstance(value, str):
            raise _fail("field", f"must be a string, not {_kind(value)}")
        return check(value)

    return BeforeValidator(read)


def _matching(regex: re.Pattern[str], what: str) -> Callable[[str], str]:
    def check(item: str) -> str:
        if len(item) > MAX_ITEM_LEN or not regex.fullmatch(item):
            raise _fail("field", f"{item!r} is not {what}")
        return item

    return check


def _resource(item: str) -> str:
    try:
        parse_pattern(item)
    except InvalidInput as err:
        raise _fail("pattern", err.message) from err
    return item


def _spiffe_pattern(item: str) -> str:
    try:
        parse_spiffe_pattern(item)
    except InvalidInput as err:
        raise _fail("pattern", f"{err.message} ({err.reason})") from err
    return item


def _selector(item: str) -> str:
    try:
        return parse_selector(item)
    except InvalidInput as err:
        raise _fail("field", err.message) from err


def _set(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(sorted(set(items)))


def _integer(low: int, high: int) -> BeforeValidator:
    def check(value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise _fail("field", f"must be an integer {low}..{high}, not {value!r}")
        return value

    return BeforeValidator(check)


def _flag(value: object) -> bool:
    if not isinstance(value, bool):
        raise _fail("field", f"must be true or false, not {value!r}")
    return value


def _ceiling(value: object) -> Sensitivity:
    if isinstance(value, Sensitivity):
        return value
    labels = [s.label for s in Sensitivity]
    if value not in labels:
        raise _fail("field", f"must be one of {', '.join(labels)}")
    return Sensitivity.parse(str(value))


def _ttl(value: object) -> int:
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise _fail("ttl", str(err)) from err
    if not 1 <= seconds <= MAX_TTL:
        raise _fail("ttl", f"must be 1s..7d, not {value!r}")
    return seconds


def _grants(value: object) -> tuple[GrantTemplate, ...]:
    if value is None:
        return ()
    if isinstance(value, tuple):  # built in code
        return value
    if not isinstance(value, Mapping):
        raise _fail("field", f"must be a mapping of broker names, not {_kind(value)}")
    templates: list[GrantTemplate] = []
    problems: list[InitErrorDetails] = []
    for broker in sorted(value, key=str):
        try:
            templates.append(parse_template(str(broker), value[broker], "grants"))
        except InvalidInput as err:  # named under grants.<broker>, every one
            failure = _fail("grants", err.message)
            problems.append({"type": failure, "loc": (str(broker),), "input": value[broker]})
    if problems:
        raise ValidationError.from_exception_data("grants", problems)
    return tuple(templates)


#: how a playbook's tasks are decided: ``enforce`` (the default) or ``shadow`` (what the
#: policies deny is let through, audited as a would-deny: ``zerolane report shadow``)
Mode = Literal["enforce", "shadow"]
MODES: tuple[Mode, ...] = ("enforce", "shadow")


def _mode(value: object) -> Mode:
    if value not in MODES:
        raise _fail("mode", f"must be one of {', '.join(MODES)}, not {value!r}")
    return "shadow" if value == "shadow" else "enforce"


def _openers(value: object) -> object:
    if not isinstance(value, Mapping | Openers):
        raise _fail("document", f"must be a mapping, not {_kind(value)}")
    return value


Name = Annotated[str, _text(NAME)]
Description = Annotated[str, _text(None)]
# a list field: 1..256 strings (selectors: 0..256), each checked; de-duplicated, sorted
Actions = Annotated[
    tuple[Annotated[str, _item(_matching(ACTION, "an action"))], ...],
    _list(1),
    AfterValidator(_set),
]
Resources = Annotated[tuple[Annotated[str, _item(_resource)], ...], _list(1), AfterValidator(_set)]
Destinations = Annotated[
    tuple[Annotated[str, _item(_matching(DESTINATION, "a destination"))], ...],
    _list(1),
    AfterValidator(_set),
]
SpiffeIds = Annotated[
    tuple[Annotated[str, _item(_spiffe_pattern)], ...], _list(1), AfterValidator(_set)
]
Selectors = Annotated[tuple[Annotated[str, _item(_selector)], ...], _list(0), AfterValidator(_set)]


@dataclass(frozen=True, slots=True)
class Openers:
    """Who may open a task from a playbook: a matching SPIFFE ID and all ``selectors``."""

    __pydantic_config__ = STRICT

    spiffe_ids: SpiffeIds
    selectors: Selectors = ()


@dataclass(frozen=True, slots=True)
class Playbook:
    """An intent template. :func:`parse_playbook` reads one from a document: every
    problem at once, each with the source and the dotted field."""

    __pydantic_config__ = STRICT

    name: Name
    description: Description
    actions: Actions
    resources: Resources
    destinations: Destinations
    data_ceiling: Annotated[Sensitivity, BeforeValidator(_ceiling)]
    max_ttl: Annotated[int, BeforeValidator(_ttl)]
    max_calls: Annotated[int, _integer(1, MAX_CALLS)]
    openers: Annotated[Openers, BeforeValidator(_openers)]
    delegable: Annotated[bool, BeforeValidator(_flag)] = False
    max_depth: Annotated[int, _integer(0, MAX_DEPTH)] = 0
    #: downstream credentials a task may ask for (one template per broker, by name)
    grants: Annotated[tuple[GrantTemplate, ...], BeforeValidator(_grants)] = ()
    #: single-use tasks: the token is good for one allowed request, then the task ends
    #: (``completed``, ``task.single_use``); needs ``max_calls: 1``
    one_shot: Annotated[bool, BeforeValidator(_flag)] = False
    #: ``shadow``: what the policies deny a task of this playbook is let through and
    #: audited as a would-deny (a task keeps the mode it was opened under)
    mode: Annotated[Mode, BeforeValidator(_mode)] = "enforce"

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if self.delegable != (self.max_depth > 0):
            raise _fail(
                "delegation",
                f"max_depth: must be 1..{MAX_DEPTH} when delegable is true, 0 when it is "
                f"false (got {self.max_depth})",
            )
        if self.one_shot and self.max_calls != 1:
            raise _fail(
                "one_shot", f"max_calls: must be 1 when one_shot is true, not {self.max_calls}"
            )
        if self.one_shot and self.delegable:
            raise _fail("one_shot", "delegable: a one-shot task cannot delegate")
        return self

    def grant(self, broker: str) -> GrantTemplate | None:
        """The template for ``broker``, None when this playbook grants none."""
        return next((g for g in self.grants if g.broker == broker), None)


#: a playbook's fields, those it may leave out, and those of its ``openers``
FIELDS = tuple(f.name for f in fields(Playbook))
OPTIONAL = frozenset(f.name for f in fields(Playbook) if f.default is not MISSING)
OPENER_FIELDS = tuple(f.name for f in fields(Openers))


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def parse_duration(value: object) -> int:
    """``90s``, ``15m``, ``2h``, ``1d``, ``"90"`` or an int -> seconds (not range-checked)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _DURATION.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a duration like 90s, 15m, 2h or 1d")
    return int(match[1]) * UNITS.get(match[2], 1)


def format_duration(seconds: int) -> str:
    """Seconds in the largest unit that divides them: ``900`` -> ``15m``."""
    for unit, size in UNITS.items():
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def parse_spiffe_pattern(text: str) -> tuple[str, tuple[str, ...]]:
    """Validate ``spiffe://<trust domain>/<pattern>``; return the domain and segments.

    The path is a :mod:`zerolane.policy.patterns` pattern whose literals may only hold
    what a SPIFFE ID path segment may (``a-z A-Z 0-9 . - _``, never ``.`` or ``..``).
    """
    if not text.startswith(SCHEME):
        raise InvalidInput("spiffe_pattern.scheme", f"{text!r} must start with {SCHEME!r}")
    trust_domain, _, path = text[len(SCHEME) :].partition("/")
    parse_trust_domain(trust_domain)
    if not path:
        raise InvalidInput(
            "spiffe_pattern.no_path", f"{text!r} needs a path pattern, e.g. /agents/*"
        )
    segments = parse_pattern(path)
    for segment in segments:
        body = segment.rstrip("*")
        if segment in (".", "..") or (body and not _SPIFFE_SEGMENT.fullmatch(body)):
            raise InvalidInput(
                "spiffe_pattern.segment",
                f"{text!r}: segment {segment!r} can never match a SPIFFE ID path segment",
            )
    return trust_domain, segments


def parse_playbook(doc: Mapping[str, object], source: str) -> Playbook:
    """Validate a playbook document (as loaded from a file) and build the playbook.

    ``source`` names where it came from (a file name) in every refusal's message; every
    problem is refused at once, one line each (``playbook.invalid`` when they are of
    several kinds).
    """
    if not isinstance(doc, Mapping):
        raise InvalidInput("playbook.document", f"{source}: must be a mapping, not {_kind(doc)}")
    return validate(Playbook, dict(doc), source=source, scheme="playbook", kinds=_KINDS)


#: the playbook's reason for a value of the wrong type, and for a table that is not one
_KINDS = {"type": "field", "table": "document"}


def playbook_as_dict(pb: Playbook) -> dict[str, object]:
    """The playbook as a document :func:`parse_playbook` accepts (TTL in seconds)."""
    doc: dict[str, object] = {
        "name": pb.name,
        "description": pb.description,
        "actions": list(pb.actions),
        "resources": list(pb.resources),
        "destinations": list(pb.destinations),
        "data_ceiling": pb.data_ceiling.label,
        "max_ttl": pb.max_ttl,
        "max_calls": pb.max_calls,
        "delegable": pb.delegable,
        "max_depth": pb.max_depth,
        "openers": {
            "spiffe_ids": list(pb.openers.spiffe_ids),
            "selectors": list(pb.openers.selectors),
        },
    }
    if pb.grants:  # only when present: older playbooks keep their canonical JSON
        doc["grants"] = {g.broker: g.as_dict() for g in pb.grants}
    if pb.one_shot:  # likewise
        doc["one_shot"] = True
    if pb.mode != "enforce":  # likewise
        doc["mode"] = pb.mode
    return doc


def playbook_to_json(pb: Playbook) -> str:
    """Canonical JSON: sorted keys, no insignificant whitespace, UTF-8 as is."""
    return json.dumps(
        playbook_as_dict(pb), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )


def playbook_from_json(text: str, source: str = "playbook JSON") -> Playbook:
    """Parse and validate a JSON playbook document (a duplicated key is refused)."""
    return parse_playbook(_document(_load_json(text, source), source), source)


class _StrictYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _syntax(source: str, detail: str) -> InvalidInput:
    return InvalidInput("playbook.syntax", f"{source}: {' '.join(detail.split())}")


def _load_yaml(text: str, source: str) -> object:
    docs: list[object] = []
    try:
        for doc in yaml.load_all(text, Loader=_StrictYamlLoader):
            docs.append(doc)
            if len(docs) > 1:
                break
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        raise _syntax(source, f"{where}{err.problem or err.context}") from err
    except yaml.YAMLError as err:
        raise _syntax(source, str(err)) from err
    if len(docs) != 1:
        raise InvalidInput(
            "playbook.documents", f"{source}: a playbook file holds exactly one YAML document"
        )
    return docs[0]


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    doc: dict[str, object] = {}
    for key, value in pairs:
        if key in doc:
            raise ValueError(f"duplicate key {key!r}")
        doc[key] = value
    return doc


def _load_json(text: str, source: str) -> object:
    try:
        return json.loads(text, object_pairs_hook=_unique_keys)
    except ValueError as err:  # JSONDecodeError is a ValueError
        raise _syntax(source, str(err)) from err


def _load_toml(text: str, source: str) -> object:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise _syntax(source, str(err)) from err


_LOADERS: dict[str, Callable[[str, str], object]] = {
    ".yaml": _load_yaml,
    ".yml": _load_yaml,
    ".toml": _load_toml,
    ".json": _load_json,
}


def _document(doc: object, source: str) -> Mapping[str, object]:
    if not isinstance(doc, Mapping):
        raise InvalidInput("playbook.document", f"{source}: must hold a mapping, not {_kind(doc)}")
    return doc


def load_playbook_file(path: str | PathLike[str]) -> Playbook:
    """Load and validate a ``.yaml``/``.yml``, ``.toml`` or ``.json`` playbook file."""
    file = Path(path)
    source = str(file)
    loader = _LOADERS.get(file.suffix.lower())
    if loader is None:
        raise InvalidInput(
            "playbook.file", f"{source}: a playbook file ends in .yaml, .yml, .toml or .json"
        )
    try:
        with file.open("rb") as handle:
            data = handle.read(MAX_FILE_BYTES + 1)
    except OSError as err:
        raise InvalidInput("playbook.file", f"{source}: cannot be read ({err.strerror})") from err
    if len(data) > MAX_FILE_BYTES:
        raise InvalidInput("playbook.file", f"{source}: larger than {MAX_FILE_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise _syntax(source, "not UTF-8 text") from err
    return parse_playbook(_document(loader(text, source), source), source)


def _id_matches(pattern: str, spiffe_id: SpiffeId) -> bool:
    trust_domain, _, path = pattern[len(SCHEME) :].partition("/")
    if trust_domain != spiffe_id.trust_domain:
        return False
    try:
        return matches(path, spiffe_id.path[1:])
    except InvalidInput:  # a path longer than any pattern may be: matched by none
        return False


def opener_matches(pb: Playbook, spiffe_id: str, selectors: Sequence[str]) -> bool:
    """True when the workload may open a task from ``pb``.

    Its SPIFFE ID must match one of the playbook's ``spiffe_ids`` patterns (same trust
    domain, path matched by the pattern) and it must hold every required selector.
    """
    if isinstance(selectors, str):
        raise TypeError("selectors is a sequence of 'type:value' strings, not one string")
    try:
        parsed = parse_workload_id(spiffe_id)
    except InvalidInput:
        return False
    if not set(pb.openers.selectors).issubset(selectors):
        return False
    return any(_id_matches(p, parsed) for p in pb.openers.spiffe_ids)

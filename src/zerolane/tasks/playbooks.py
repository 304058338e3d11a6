"""Playbooks: admin-registered intent templates, the most a task of one kind may do.

A playbook file (YAML, TOML or JSON) is validated field by field; every refusal is an
:class:`InvalidInput` whose reason is stable (``playbook.field``, ``playbook.ttl`` ...)
and whose message names the file and the dotted field. Lists are de-duplicated and
sorted, so :func:`playbook_to_json` gives one canonical document per playbook.
The format is documented in ``docs/playbooks.md``.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any, TypeVar

import yaml

from zerolane.errors import InvalidInput
from zerolane.grants.broker import GrantTemplate, parse_template
from zerolane.identity.selectors import parse_selector
from zerolane.identity.spiffe_id import SCHEME, SpiffeId, parse_trust_domain, parse_workload_id
from zerolane.policy.patterns import matches, parse_pattern
from zerolane.types import Sensitivity

# Used with ``fullmatch``: ``$`` would also match before a trailing newline.
_T = TypeVar("_T")
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

FIELDS = (
    "name",
    "description",
    "actions",
    "resources",
    "destinations",
    "data_ceiling",
    "max_ttl",
    "max_calls",
    "delegable",
    "max_depth",
    "openers",
    "grants",
    "one_shot",
)
OPTIONAL = frozenset({"delegable", "max_depth", "grants", "one_shot"})
OPENER_FIELDS = ("spiffe_ids", "selectors")


@dataclass(frozen=True, slots=True)
class Openers:
    """Who may open a task from a playbook: a matching SPIFFE ID and all ``selectors``."""

    spiffe_ids: tuple[str, ...]
    selectors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Playbook:
    """An intent template. Build it with :func:`parse_playbook`, which validates."""

    name: str
    description: str
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    destinations: tuple[str, ...]
    data_ceiling: Sensitivity
    max_ttl: int
    max_calls: int
    openers: Openers
    delegable: bool = False
    max_depth: int = 0
    #: downstream credentials a task may ask for (one template per broker, by name)
    grants: tuple[GrantTemplate, ...] = ()
    #: single-use tasks: the token is good for one allowed request, then the task ends
    #: (``completed``, ``task.single_use``); needs ``max_calls: 1``
    one_shot: bool = False

    def grant(self, broker: str) -> GrantTemplate | None:
        """The template for ``broker``, None when this playbook grants none."""
        return next((g for g in self.grants if g.broker == broker), None)


class _Fields:
    """Reads fields of one document, naming the source and dotted field on refusal.

    Every problem is kept (:meth:`each`), so one refusal lists them all, one line
    each; its reason is theirs when they share one, else ``playbook.invalid``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[InvalidInput] = []

    def each(self, read: Callable[[], _T]) -> _T | None:
        """``read()``, or None with its refusal kept for :meth:`refuse`."""
        try:
            return read()
        except InvalidInput as err:
            self.problems.append(err)
            return None

    def refuse(self) -> None:
        """Raise every problem kept so far as one refusal (nothing when none)."""
        if self.problems:
            reasons = {problem.reason for problem in self.problems}
            reason = reasons.pop() if len(reasons) == 1 else "playbook.invalid"
            lines = "\n".join(problem.message for problem in self.problems)
            raise InvalidInput(reason, lines)

    def fail(self, reason: str, field: str, detail: str) -> InvalidInput:
        where = f"{field}: " if field else ""
        return InvalidInput(f"playbook.{reason}", f"{self.source}: {where}{detail}")

    def keys(
        self, doc: object, field: str, known: Sequence[str], optional: frozenset[str]
    ) -> Mapping[str, object]:
        """``doc`` itself, once it is a mapping with every required and no unknown key."""
        if not isinstance(doc, Mapping):
            raise self.fail("document", field, f"must be a mapping, not {_kind(doc)}")
        for key in sorted((k for k in doc if k not in known), key=str):
            self.problems.append(
                self.fail(
                    "unknown_key", _dotted(field, key), f"unknown key (known: {', '.join(known)})"
                )
            )
        for key in (k for k in known if k not in doc and k not in optional):
            self.problems.append(self.fail("missing", _dotted(field, key), "is required"))
        return doc

    def integer(self, value: object, field: str, low: int, high: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise self.fail("field", field, f"must be an integer {low}..{high}, not {value!r}")
        return value

    def strings(
        self, value: object, field: str, check: Callable[[str, str], str]
    ) -> tuple[str, ...]:
        """A non-empty list of strings, each passed through ``check(item, dotted)``."""
        if not isinstance(value, list | tuple) or not 0 < len(value) <= MAX_ITEMS:
            raise self.fail("field", field, f"must be a list of 1..{MAX_ITEMS} strings")
        items: set[str] = set()
        for index, item in enumerate(value):
            where = f"{field}[{index}]"
            if not isinstance(item, str):
                raise self.fail("field", where, f"must be a string, not {_kind(item)}")
            items.add(check(item, where))
        return tuple(sorted(items))

    def matching(self, regex: re.Pattern[str], what: str) -> Callable[[str, str], str]:
        def check(item: str, where: str) -> str:
            if len(item) > MAX_ITEM_LEN or not regex.fullmatch(item):
                raise self.fail("field", where, f"{item!r} is not {what}")
            return item

        return check

    def resource(self, item: str, where: str) -> str:
        try:
            parse_pattern(item)
        except InvalidInput as err:
            raise self.fail("pattern", where, err.message) from err
        return item

    def spiffe_pattern(self, item: str, where: str) -> str:
        try:
            parse_spiffe_pattern(item)
        except InvalidInput as err:
            raise self.fail("pattern", where, f"{err.message} ({err.reason})") from err
        return item

    def selector(self, item: str, where: str) -> str:
        try:
            return parse_selector(item)
        except InvalidInput as err:
            raise self.fail("field", where, err.message) from err


def _kind(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _dotted(field: str, key: object) -> str:
    return f"{field}.{key}" if field else str(key)


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


def _ceiling(fields: _Fields, value: object) -> Sensitivity:
    labels = [s.label for s in Sensitivity]
    if value not in labels:
        raise fields.fail("field", "data_ceiling", f"must be one of {', '.join(labels)}")
    return Sensitivity.parse(str(value))


def _ttl(fields: _Fields, value: object) -> int:
    try:
        seconds = parse_duration(value)
    except ValueError as err:
        raise fields.fail("ttl", "max_ttl", str(err)) from err
    if not 1 <= seconds <= MAX_TTL:
        raise fields.fail("ttl", "max_ttl", f"must be 1s..7d, not {value!r}")
    return seconds


def _text(fields: _Fields, value: object, field: str, pattern: re.Pattern[str] | None) -> str:
    if not isinstance(value, str):
        raise fields.fail("field", field, f"must be a string, not {_kind(value)}")
    if pattern is not None and not pattern.fullmatch(value):
        raise fields.fail("field", field, f"{value!r} must match {pattern.pattern}")
    if pattern is None and not (value.strip() and len(value) <= MAX_DESCRIPTION):
        raise fields.fail("field", field, f"must be 1..{MAX_DESCRIPTION} characters, not blank")
    return value


def _openers(fields: _Fields, value: object) -> Openers:
    doc = fields.keys(value, "openers", OPENER_FIELDS, frozenset({"selectors"}))
    if "spiffe_ids" not in doc:  # a problem :meth:`_Fields.keys` kept already
        return Openers(())
    spiffe_ids = fields.strings(doc["spiffe_ids"], "openers.spiffe_ids", fields.spiffe_pattern)
    raw = doc.get("selectors", [])
    if isinstance(raw, list | tuple) and not raw:
        return Openers(spiffe_ids)
    return Openers(spiffe_ids, fields.strings(raw, "openers.selectors", fields.selector))


def _delegation(fields: _Fields, doc: Mapping[str, object]) -> tuple[bool, int]:
    delegable = doc.get("delegable", False)
    if not isinstance(delegable, bool):
        raise fields.fail("field", "delegable", f"must be true or false, not {delegable!r}")
    depth = fields.integer(doc.get("max_depth", 0), "max_depth", 0, MAX_DEPTH)
    if delegable != (depth > 0):
        raise fields.fail(
            "delegation",
            "max_depth",
            f"must be 1..{MAX_DEPTH} when delegable is true, 0 when it is false (got {depth})",
        )
    return delegable, depth


def _grants(fields: _Fields, value: object) -> tuple[GrantTemplate, ...]:
    if value is None:
        return ()
    if not isinstance(value, Mapping):
        raise fields.fail(
            "field", "grants", f"must be a mapping of broker names, not {_kind(value)}"
        )
    templates: list[GrantTemplate] = []
    for broker in sorted(value, key=str):
        try:
            templates.append(parse_template(str(broker), value[broker], "grants"))
        except InvalidInput as err:
            raise fields.fail("grants", f"grants.{broker}", err.message) from err
    return tuple(templates)


def parse_playbook(doc: Mapping[str, object], source: str) -> Playbook:
    """Validate a playbook document (as loaded from a file) and build the playbook.

    ``source`` names where it came from (a file name) in every refusal's message.
    """
    fields = _Fields(source)
    doc = fields.keys(doc, "", FIELDS, OPTIONAL)
    each = fields.each

    def field(key: str, read: Callable[[object], _T]) -> _T | None:
        """A required field read, or None when it is missing (already a problem)."""
        return each(lambda: read(doc[key])) if key in doc else None

    name = field("name", lambda v: _text(fields, v, "name", NAME))
    description = field("description", lambda v: _text(fields, v, "description", None))
    action = fields.matching(ACTION, "an action")
    actions = field("actions", lambda v: fields.strings(v, "actions", action))
    resources = field("resources", lambda v: fields.strings(v, "resources", fields.resource))
    destination = fields.matching(DESTINATION, "a destination")
    destinations = field("destinations", lambda v: fields.strings(v, "destinations", destination))
    ceiling = field("data_ceiling", lambda v: _ceiling(fields, v))
    max_ttl = field("max_ttl", lambda v: _ttl(fields, v))
    max_calls = field("max_calls", lambda v: fields.integer(v, "max_calls", 1, MAX_CALLS))
    delegation = each(lambda: _delegation(fields, doc))
    openers = field("openers", lambda v: _openers(fields, v))
    grants = each(lambda: _grants(fields, doc.get("grants")))
    one_shot = each(
        lambda: _one_shot(
            fields, doc.get("one_shot", False), max_calls or 1, bool(delegation and delegation[0])
        )
    )
    fields.refuse()  # past here every field was read (a None would have been a problem)
    delegable, max_depth = _read(delegation)
    return Playbook(
        _read(name),
        _read(description),
        _read(actions),
        _read(resources),
        _read(destinations),
        _read(ceiling),
        _read(max_ttl),
        _read(max_calls),
        _read(openers),
        delegable,
        max_depth,
        _read(grants),
        _read(one_shot),
    )


def _read(value: _T | None) -> _T:
    """A field :func:`parse_playbook` read (it refuses before any is None)."""
    if value is None:
        raise InvalidInput("playbook.field", "a field could not be read")
    return value


def _one_shot(fields: _Fields, value: object, max_calls: int, delegable: bool) -> bool:
    if not isinstance(value, bool):
        raise fields.fail("field", "one_shot", f"must be true or false, not {value!r}")
    if value and max_calls != 1:
        raise fields.fail(
            "one_shot", "max_calls", f"must be 1 when one_shot is true, not {max_calls}"
        )
    if value and delegable:
        raise fields.fail("one_shot", "delegable", "a one-shot task cannot delegate")
    return value


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

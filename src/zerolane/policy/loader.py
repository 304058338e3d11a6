"""Load a policy directory into an immutable :class:`Snapshot`, or refuse it whole.

A directory holds ``schema.cedarschema`` (Cedar schema syntax) and any number of
``*.cedar`` files, read in sorted order. Every policy carries a unique ``@id("...")``
and every policy passes strict validation against the schema; otherwise nothing is
loaded. Cedar skips a policy whose evaluation errors (a ``forbid`` included), so an
unvalidated set can fail open.

A ``forbid`` annotated ``@approval("required")`` asks for a human approval instead of
denying outright (:mod:`zerolane.tasks.approvals`): the snapshot names those policies
and keeps the set without them, so the engine can tell a request that only needs an
approval from one that is refused anyway. ``@approval`` on a ``permit``, or with any
other value, is refused at load (``policy.invalid``).

A ``forbid`` annotated ``@shadow("never")`` is a safety rule rather than a grant (no
egress after a sensitive read, a risky task kept off sensitive data): a deny it
determines stays a deny in every shadow mode (:mod:`zerolane.tasks.decision_core`), so
trying a playbook or a narrower policy in shadow never switches it off. The snapshot
names those policies. ``@shadow`` on a ``permit``, bare, or with any other value is
refused at load (``policy.invalid``), as is a bare ``@approval``.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG

import cedarpy

from zerolane.policy.engine import PolicyLoadError
from zerolane.policy.locations import (
    policy_position,
    syntax_error_position,
    without_policy_reference,
)

SCHEMA_NAME = "schema.cedarschema"
#: the annotation (and its one value) of a forbid that asks for a human approval
APPROVAL_ANNOTATION = "approval"
APPROVAL_REQUIRED = "required"
#: the annotation (and its one value) of a forbid that no shadow mode relaxes
SHADOW_ANNOTATION = "shadow"
SHADOW_NEVER = "never"
#: what each such annotation may say, and only on a forbid
_FORBID_MARKS = {APPROVAL_ANNOTATION: APPROVAL_REQUIRED, SHADOW_ANNOTATION: SHADOW_NEVER}
POLICY_SUFFIX = ".cedar"
#: the schema zerolane ships (``policy/default``), whose request shapes the context
#: builder (:mod:`zerolane.policy.context`) is tested to produce
SHIPPED_SCHEMA = Path(__file__).resolve().parent / "default" / SCHEMA_NAME


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A parsed, validated policy set: the unit swapped atomically on reload."""

    policies: cedarpy.PolicySet
    schema: cedarpy.Schema
    version: str
    policy_ids: tuple[str, ...]  # @id of every policy, in load order
    files: tuple[str, ...]
    #: the schema is zerolane's own, byte for byte (see :data:`SHIPPED_SCHEMA`)
    shipped_schema: bool = False
    #: @id of every ``forbid`` annotated ``@approval("required")``
    approval_ids: frozenset[str] = frozenset()
    #: the set without those policies (None when there are none)
    without_approval: cedarpy.PolicySet | None = None
    #: @id of every ``forbid`` annotated ``@shadow("never")``: a deny one of them
    #: determines is never relaxed by shadow mode
    shadow_never: frozenset[str] = frozenset()


Stamps = tuple[tuple[str, int, int, int], ...]  # (name, size, mtime_ns, inode), by name


@dataclass(frozen=True, slots=True)
class Reading:
    """The texts of a policy directory, read while none of its files changed."""

    directory: Path
    schema: str
    texts: tuple[tuple[str, str], ...]  # (file name, text) of every *.cedar file, by name
    stamps: Stamps  # of the schema and the *.cedar files, the same before and after the read
    version: str  # sha256 of the schema and of every file's name and text


def policy_files(directory: Path) -> list[Path]:
    """The ``*.cedar`` files of ``directory`` (not its subfolders), sorted by name."""
    return sorted(p for p in directory.glob(f"*{POLICY_SUFFIX}") if p.is_file())


def stamps(directory: Path) -> Stamps:
    """Size, mtime and inode of each file a load reads (empty if the folder is unreadable).

    Symbolic links are followed, so swapping a link to a new folder (as a Kubernetes
    ConfigMap does) changes the stamps too.
    """
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return ()
    found = []
    for entry in entries:
        if entry.name == SCHEMA_NAME or entry.name.endswith(POLICY_SUFFIX):
            try:
                stat = entry.stat()
            except OSError:  # gone since the listing: the next look sees it gone
                continue
            if S_ISREG(stat.st_mode):
                found.append((entry.name, stat.st_size, stat.st_mtime_ns, stat.st_ino))
    return tuple(sorted(found))


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyLoadError("policy.unreadable", [f"{path}: {err}"]) from None


def _changing(directory: Path) -> PolicyLoadError:
    return PolicyLoadError(
        "policy.changing",
        [f"{directory}: files changed while they were read; nothing was loaded"],
    )


def read_directory(directory: Path) -> Reading:
    """Read the schema and the ``*.cedar`` files, refusing a read that overlapped a write.

    The files' stamps are taken before and after reading them; if they differ (a file
    was written, added, removed or replaced meanwhile) the read raises
    :class:`PolicyLoadError` ``policy.changing`` instead of returning a mix. A read
    that does not overlap a write can still find a file half written: only waiting
    until the files hold still (the watcher) or replacing them atomically avoids that.
    """
    if not directory.is_dir():
        raise PolicyLoadError("policy.no_directory", [f"{directory}: not a directory"])
    before = stamps(directory)
    try:
        path = directory / SCHEMA_NAME
        if not path.is_file():
            raise PolicyLoadError("policy.schema_missing", [f"{path}: no schema file"])
        schema = _read(path)
        texts = tuple((p.name, _read(p)) for p in policy_files(directory))
    except PolicyLoadError:
        if stamps(directory) != before:
            raise _changing(directory) from None
        raise
    if stamps(directory) != before:
        raise _changing(directory)
    digest = hashlib.sha256(b"schema\0" + schema.encode() + b"\0")
    for name, text in texts:
        digest.update(name.encode() + b"\0" + text.encode() + b"\0")
    return Reading(directory, schema, texts, before, digest.hexdigest())


def _parse_schema(text: str) -> cedarpy.Schema:
    try:
        return cedarpy.Schema.from_str(text)
    except ValueError as err:
        raise PolicyLoadError("policy.schema_invalid", [f"{SCHEMA_NAME}: {err}"]) from None


def _parses(text: str) -> bool:
    try:
        cedarpy.policies_to_json_str(text)
    except ValueError:
        return False
    return True


def _where(name: str, position: tuple[int, int] | None) -> str:
    """``file:line:column`` (just ``file`` when the position is unknown)."""
    return f"{name}:{position[0]}:{position[1]}" if position else name


def _annotated_ids(name: str, text: str) -> tuple[list[str], list[str], list[str]]:
    """The policies' @ids in order, plus missing-id and other syntax problems (an
    ``@approval`` other than ``"required"``, or a ``@shadow`` other than ``"never"``, on
    a ``forbid`` among them)."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as err:
        where = _where(name, syntax_error_position(text, _parses))
        return [], [], [f"{where}: syntax error: {err}"]
    problems = [f"{name}: {pid}: templates are not supported" for pid in est.get("templates", {})]
    ids: list[str] = []
    missing: list[str] = []
    for pid, policy in est.get("staticPolicies", {}).items():
        annotations = policy.get("annotations", {})
        annotation = annotations.get("id")
        for mark, value in _FORBID_MARKS.items():
            # present at all (a bare one has no value): exactly its value, on a forbid
            if mark in annotations and (
                annotations[mark] != value or policy.get("effect") != "forbid"
            ):
                where = _where(name, policy_position(text, pid))
                problems.append(f'{where}: @{mark}("{value}") only marks a forbid policy')
        if annotation:
            ids.append(annotation)
        else:
            where = _where(name, policy_position(text, pid))
            missing.append(f'{where}: a policy has no @id("...") annotation')
    return ids, missing, problems


def _validation_errors(name: str, text: str, schema: cedarpy.Schema) -> list[str]:
    result = cedarpy.validate_policies(text, schema)
    if result.validation_passed:
        return []
    names = result.id_annotations_by_policy_id
    errors = []
    for error in result.errors:
        where = _where(name, policy_position(text, error.policy_id))
        label = names.get(error.policy_id)
        message = without_policy_reference(error.error) if label else error.error
        errors.append(f"{where}: [{label}] {message}" if label else f"{where}: {message}")
    return errors or [f"{name}: validation failed"]


def load_snapshot(directory: Path) -> Snapshot:
    """Read, check and parse ``directory``; raise :class:`PolicyLoadError` on any problem."""
    return parse(read_directory(directory))


def parse(reading: Reading) -> Snapshot:
    """Check and parse what was read; raise :class:`PolicyLoadError` on any problem."""
    schema = _parse_schema(reading.schema)
    all_ids: list[str] = []
    seen: dict[str, str] = {}
    missing: list[str] = []
    duplicates: list[str] = []
    invalid: list[str] = []
    for name, text in reading.texts:
        ids, no_id, problems = _annotated_ids(name, text)
        missing += no_id
        invalid += problems
        for policy_id in ids:
            if policy_id in seen:
                first = seen[policy_id]
                duplicates.append(f"{name}: @id({policy_id!r}) is also used in {first}")
            seen.setdefault(policy_id, name)
        if not problems:
            invalid += _validation_errors(name, text, schema)
        all_ids += ids
    problems = invalid + missing + duplicates  # every problem is reported, the first names it
    if problems:
        reason = "policy.invalid" if invalid else "policy.missing_id"
        if not invalid and not missing:
            reason = "policy.duplicate_id"
        raise PolicyLoadError(reason, problems)
    if not all_ids:
        raise PolicyLoadError(
            "policy.empty", [f"{reading.directory}: no policies in *.cedar files"]
        )
    policies = cedarpy.PolicySet.from_str("\n".join(text for _, text in reading.texts))
    if len(policies) != len(all_ids):  # the joined text must parse to exactly these policies
        raise PolicyLoadError(
            "policy.invalid", [f"{reading.directory}: files do not concatenate cleanly"]
        )
    est = json.loads(cedarpy.policies_to_json_str("\n".join(t for _, t in reading.texts)))
    static: dict[str, dict[str, object]] = est.get("staticPolicies", {})
    approval_ids, without_approval = _approval_policies(est, static)
    return Snapshot(
        policies=policies,
        schema=schema,
        version=reading.version,
        policy_ids=tuple(all_ids),
        files=tuple(name for name, _ in reading.texts),
        shipped_schema=reading.schema == _shipped_schema(),
        approval_ids=approval_ids,
        without_approval=without_approval,
        shadow_never=_marked(static, SHADOW_ANNOTATION, SHADOW_NEVER),
    )


def _marked(static: dict[str, dict[str, object]], mark: str, value: str) -> frozenset[str]:
    """The @ids of the policies annotated ``@<mark>("<value>")``."""
    return frozenset(
        str(_annotation(policy, "id"))
        for policy in static.values()
        if _annotation(policy, mark) == value
    )


def _approval_policies(
    est: dict[str, object], static: dict[str, dict[str, object]]
) -> tuple[frozenset[str], cedarpy.PolicySet | None]:
    """The @ids of the approval policies, and the set without them (None: no such)."""
    asking = {
        pid: policy
        for pid, policy in static.items()
        if _annotation(policy, APPROVAL_ANNOTATION) == APPROVAL_REQUIRED
    }
    if not asking:
        return frozenset(), None
    ids = frozenset(str(_annotation(policy, "id")) for policy in asking.values())
    est["staticPolicies"] = {pid: p for pid, p in static.items() if pid not in asking}
    return ids, cedarpy.PolicySet.from_json_str(json.dumps(est))


def _annotation(policy: dict[str, object], name: str) -> object:
    annotations = policy.get("annotations")
    return annotations.get(name) if isinstance(annotations, dict) else None


@lru_cache(maxsize=1)
def _shipped_schema() -> str:
    return SHIPPED_SCHEMA.read_text(encoding="utf-8")

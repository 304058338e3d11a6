"""Load a policy directory into an immutable :class:`Snapshot`, or refuse it whole.

A directory holds ``schema.cedarschema`` (Cedar schema syntax) and any number of
``*.cedar`` files, read in sorted order. Every policy carries a unique ``@id("...")``
and every policy passes strict validation against the schema; otherwise nothing is
loaded. Cedar skips a policy whose evaluation errors (a ``forbid`` included), so an
unvalidated set can fail open.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import cedarpy

from zerolane.policy.engine import PolicyLoadError

SCHEMA_NAME = "schema.cedarschema"
POLICY_SUFFIX = ".cedar"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A parsed, validated policy set: the unit swapped atomically on reload."""

    policies: cedarpy.PolicySet
    schema: cedarpy.Schema
    version: str
    policy_ids: tuple[str, ...]  # @id of every policy, in load order
    files: tuple[str, ...]


def policy_files(directory: Path) -> list[Path]:
    """The ``*.cedar`` files of ``directory`` (not its subfolders), sorted by name."""
    return sorted(p for p in directory.glob(f"*{POLICY_SUFFIX}") if p.is_file())


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise PolicyLoadError("policy.unreadable", [f"{path}: {err}"]) from None


def _load_schema(directory: Path) -> tuple[str, cedarpy.Schema]:
    path = directory / SCHEMA_NAME
    if not directory.is_dir():
        raise PolicyLoadError("policy.no_directory", [f"{directory}: not a directory"])
    if not path.is_file():
        raise PolicyLoadError("policy.schema_missing", [f"{path}: no schema file"])
    text = _read(path)
    try:
        return text, cedarpy.Schema.from_str(text)
    except ValueError as err:
        raise PolicyLoadError("policy.schema_invalid", [f"{path.name}: {err}"]) from None


def _annotated_ids(name: str, text: str) -> tuple[list[str], list[str], list[str]]:
    """The policies' @ids in order, plus missing-id and other syntax problems."""
    try:
        est = json.loads(cedarpy.policies_to_json_str(text))
    except ValueError as err:
        return [], [], [f"{name}: syntax error: {err}"]
    problems = [f"{name}: {pid}: templates are not supported" for pid in est.get("templates", {})]
    ids: list[str] = []
    missing: list[str] = []
    for pid, policy in est.get("staticPolicies", {}).items():
        annotation = policy.get("annotations", {}).get("id")
        if annotation:
            ids.append(annotation)
        else:
            missing.append(f'{name}: policy {pid} has no @id("...") annotation')
    return ids, missing, problems


def _validation_errors(name: str, text: str, schema: cedarpy.Schema) -> list[str]:
    result = cedarpy.validate_policies(text, schema)
    if result.validation_passed:
        return []
    names = result.id_annotations_by_policy_id
    errors = []
    for error in result.errors:
        label = names.get(error.policy_id) or error.policy_id
        where = f"{name} [{label}]" if label else name
        errors.append(f"{where}: {error.error}")
    return errors or [f"{name}: validation failed"]


def load_snapshot(directory: Path) -> Snapshot:
    """Read, check and parse ``directory``; raise :class:`PolicyLoadError` on any problem."""
    schema_text, schema = _load_schema(directory)
    digest = hashlib.sha256(b"schema\0" + schema_text.encode() + b"\0")
    files = policy_files(directory)
    texts: list[str] = []
    all_ids: list[str] = []
    seen: dict[str, str] = {}
    missing: list[str] = []
    duplicates: list[str] = []
    invalid: list[str] = []
    for path in files:
        text = _read(path)
        digest.update(path.name.encode() + b"\0" + text.encode() + b"\0")
        ids, no_id, problems = _annotated_ids(path.name, text)
        missing += no_id
        invalid += problems
        for policy_id in ids:
            if policy_id in seen:
                first = seen[policy_id]
                duplicates.append(f"{path.name}: @id({policy_id!r}) is also used in {first}")
            seen.setdefault(policy_id, path.name)
        if not problems:
            invalid += _validation_errors(path.name, text, schema)
        texts.append(text)
        all_ids += ids
    problems = invalid + missing + duplicates  # every problem is reported, the first names it
    if problems:
        reason = "policy.invalid" if invalid else "policy.missing_id"
        if not invalid and not missing:
            reason = "policy.duplicate_id"
        raise PolicyLoadError(reason, problems)
    if not all_ids:
        raise PolicyLoadError("policy.empty", [f"{directory}: no policies in *.cedar files"])
    policies = cedarpy.PolicySet.from_str("\n".join(texts))
    if len(policies) != len(all_ids):  # the joined text must parse to exactly these policies
        raise PolicyLoadError("policy.invalid", [f"{directory}: files do not concatenate cleanly"])
    return Snapshot(
        policies=policies,
        schema=schema,
        version=digest.hexdigest(),
        policy_ids=tuple(all_ids),
        files=tuple(p.name for p in files),
    )

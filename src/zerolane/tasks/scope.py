"""A task's scope, and the check that a requested scope is within its playbook.

Requests use the RFC 9396 ``authorization_details`` shape with our type
``zerolane_task``: ``actions``, ``locations`` (destinations), ``datatypes``
(sensitivity labels; the highest is the task's data ceiling), ``identifier`` (one
resource pattern) and ``resources`` (several). One entry per task; a dimension it
leaves out takes the playbook's value. Anything wider than the playbook is refused with the reason;
nothing is silently narrowed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from zerolane.errors import Forbidden, InvalidInput
from zerolane.policy.patterns import is_within, parse_pattern
from zerolane.types import Sensitivity

if TYPE_CHECKING:  # parsing playbooks (YAML) is not needed to read a stored scope
    from zerolane.tasks.playbooks import Playbook

DETAILS_TYPE = "zerolane_task"
_FIELDS = frozenset({"type", "actions", "locations", "datatypes", "identifier", "resources"})
#: One entry per task: a task's scope is actions x resources x destinations, so merging
#: several entries would grant combinations nobody asked for.
MAX_ENTRIES = 1
MAX_ITEMS = 64


@dataclass(frozen=True, slots=True)
class Scope:
    actions: tuple[str, ...]
    resources: tuple[str, ...]
    destinations: tuple[str, ...]
    ceiling: Sensitivity
    #: the task runs in shadow mode (its playbook's ``mode: shadow`` when it was
    #: opened; a delegated child inherits it): what the policies deny is let through
    #: and audited as a would-deny. Not a permission: never in the token
    shadow: bool = False

    def to_json(self) -> str:
        doc: dict[str, object] = {
            "actions": list(self.actions),
            "resources": list(self.resources),
            "destinations": list(self.destinations),
            "ceiling": self.ceiling.label,
        }
        if self.shadow:  # only when set: an enforced task's stored scope is unchanged
            doc["shadow"] = True
        return json.dumps(doc, sort_keys=True, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Scope:
        doc = json.loads(text)
        return cls(
            actions=tuple(doc["actions"]),
            resources=tuple(doc["resources"]),
            destinations=tuple(doc["destinations"]),
            ceiling=Sensitivity.parse(doc["ceiling"]),
            shadow=doc.get("shadow") is True,
        )

    def details_json(self) -> str:
        return json.dumps(self.authorization_details(), sort_keys=True, separators=(",", ":"))

    def authorization_details(self) -> list[dict[str, Any]]:
        """The granted scope in RFC 9396 shape, as carried by the task token."""
        return [
            {
                "type": DETAILS_TYPE,
                "actions": list(self.actions),
                "locations": list(self.destinations),
                "resources": list(self.resources),
                "datatypes": [s.label for s in Sensitivity if s <= self.ceiling],
            }
        ]


def _strings(entry: Mapping[str, Any], name: str, index: int) -> list[str] | None:
    value = entry.get(name)
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or not value
        or len(value) > MAX_ITEMS
        or not all(isinstance(v, str) and v for v in value)
    ):
        raise InvalidInput(
            "authorization_details.field",
            f"authorization_details[{index}].{name} must be a non-empty list of strings",
        )
    return list(value)


def playbook_scope(playbook: Playbook) -> Scope:
    """The most a task of ``playbook`` may ask for."""
    return Scope(
        playbook.actions,
        playbook.resources,
        playbook.destinations,
        playbook.data_ceiling,
        shadow=playbook.mode == "shadow",
    )


def _entry_scope(entry: object, index: int, bound: Scope) -> Scope:
    if not isinstance(entry, Mapping):
        raise InvalidInput(
            "authorization_details.field", f"authorization_details[{index}] must be an object"
        )
    unknown = set(entry) - _FIELDS
    if unknown:
        raise InvalidInput(
            "authorization_details.unknown_field",
            f"authorization_details[{index}] has unknown field(s): {', '.join(sorted(unknown))}",
        )
    if entry.get("type") != DETAILS_TYPE:
        raise InvalidInput(
            "authorization_details.type",
            f"authorization_details[{index}].type must be {DETAILS_TYPE!r}",
        )
    actions = _strings(entry, "actions", index) or list(bound.actions)
    destinations = _strings(entry, "locations", index) or list(bound.destinations)
    resources = _strings(entry, "resources", index) or []
    identifier = entry.get("identifier")
    if identifier is not None:
        if not isinstance(identifier, str) or not identifier:
            raise InvalidInput(
                "authorization_details.field",
                f"authorization_details[{index}].identifier must be a string",
            )
        resources.append(identifier)
    labels = _strings(entry, "datatypes", index)
    try:
        levels = [Sensitivity.parse(label) for label in labels] if labels else []
    except ValueError as err:
        raise InvalidInput("authorization_details.datatypes", str(err)) from err
    for pattern in resources:
        parse_pattern(pattern)
    return Scope(
        actions=tuple(actions),
        resources=tuple(resources or bound.resources),
        destinations=tuple(destinations),
        ceiling=max(levels) if levels else bound.ceiling,
        shadow=bound.shadow,
    )


def _check_within(scope: Scope, bound: Scope, what: str) -> None:
    """Refuse ``scope`` unless each dimension is within ``bound`` (``what`` names it:
    ``playbook reports``, ``parent task tsk_...``)."""
    for action in scope.actions:
        if action not in bound.actions:
            raise Forbidden("scope.action", f"action {action!r} is not in {what}")
    for destination in scope.destinations:
        if destination not in bound.destinations:
            raise Forbidden("scope.destination", f"destination {destination!r} is not in {what}")
    for pattern in scope.resources:
        if not any(is_within(pattern, outer) for outer in bound.resources):
            raise Forbidden(
                "scope.resource", f"resources {pattern!r} are not within {what}'s patterns"
            )
    if scope.ceiling > bound.ceiling:
        raise Forbidden(
            "scope.sensitivity",
            f"data up to {scope.ceiling.label} exceeds the ceiling of {what} "
            f"({bound.ceiling.label})",
        )


def requested_scope(details: Sequence[object] | None, playbook: Playbook) -> Scope:
    """The scope a task asks for; refused (never narrowed) when wider than ``playbook``."""
    return _requested(details, playbook_scope(playbook), f"playbook {playbook.name}")


def requested_subscope(details: Sequence[object] | None, parent: Scope, parent_id: str) -> Scope:
    """The scope a delegated child asks for, within its parent's (``parent``): each
    dimension it leaves out takes the parent's value; anything wider is refused with
    the same reasons as a task wider than its playbook (``scope.action``,
    ``scope.resource``, ``scope.destination``, ``scope.sensitivity``)."""
    return _requested(details, parent, f"parent task {parent_id}")


def _requested(details: Sequence[object] | None, bound: Scope, what: str) -> Scope:
    if details is None:
        return bound
    if not isinstance(details, Sequence) or isinstance(details, str | bytes):
        raise InvalidInput(
            "authorization_details.field", "authorization_details must be a list of objects"
        )
    if len(details) != MAX_ENTRIES:
        raise InvalidInput(
            "authorization_details.count",
            "give exactly one authorization_details entry (open one task per scope)",
        )
    scope = _entry_scope(details[0], 0, bound)
    _check_within(scope, bound, what)
    return Scope(
        actions=tuple(sorted(set(scope.actions))),
        resources=tuple(sorted(set(scope.resources))),
        destinations=tuple(sorted(set(scope.destinations))),
        ceiling=scope.ceiling,
        shadow=scope.shadow,
    )

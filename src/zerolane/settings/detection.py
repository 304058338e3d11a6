"""``[detection]``: the detectors that read the audit log while tasks run.

The runner (:mod:`zerolane.detection.runner`) reads the log by sequence number from
each detector's stored cursor, off the decision path, every ``poll_interval`` seconds
(or sooner when it is behind), ``batch_size`` events at a time. Each detector has a
table of its own with ``enabled`` and its thresholds; a detection is an audit event
(``kind = "detection"``) naming its ``severity``. See docs/detection.md.

```toml
[detection]
enabled = true
[detection.scope_probing]
distinct = 5
window_seconds = 60
```
"""

from __future__ import annotations

import zoneinfo
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, model_validator

from zerolane.settings.validate import (
    STRICT,
    Bool,
    Float,
    Int,
    Str,
    Texts,
    reason,
    refuse,
    within,
)
from zerolane.types import Sensitivity

Severity = Annotated[Literal["low", "medium", "high"], reason("config.detection_severity")]
#: the longest window a detector may keep open (one day): its state is stored with its cursor
MAX_WINDOW = 86400
Window = Annotated[Int, within("config.detection", 1, MAX_WINDOW, " seconds")]
Count = Annotated[Int, within("config.detection", 1, 10_000)]

#: the reason ids of a refused replay: a spent proof id or refresh token used again, a
#: token presented with another key or certificate than its own, or for another task
REPLAY_REASONS = (
    "dpop.replayed",
    "dpop.key_mismatch",
    "mtls.cert_mismatch",
    "token.task_mismatch",
    "oauth.refresh_reused",
)


def _given_name(value: str) -> str:
    if not value.strip():
        raise refuse("config.detection", "must be a name, not empty")
    return value


def _reasons(values: tuple[str, ...]) -> tuple[str, ...]:
    if not values or not all(values):
        raise refuse("config.detection", "must be a list of reason ids, none empty")
    return values


@dataclass(frozen=True, slots=True)
class ReplaySettings:
    """``[detection.replay]``: ``threshold`` refused replays (``reasons``) of one task
    (or of the unidentified, when no task is known) within ``window_seconds``."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    threshold: Count = 1
    window_seconds: Window = 60
    severity: Severity = "high"
    reasons: Annotated[Texts, AfterValidator(_reasons)] = REPLAY_REASONS


@dataclass(frozen=True, slots=True)
class ScopeProbingSettings:
    """``[detection.scope_probing]``: ``distinct`` different (action, resource) pairs
    denied to one task within ``window_seconds``."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    distinct: Annotated[Int, within("config.detection", 2, 10_000)] = 5
    window_seconds: Window = 60
    severity: Severity = "medium"


@dataclass(frozen=True, slots=True)
class DelegationFanoutSettings:
    """``[detection.delegation_fanout]``: ``children`` delegations from one task within
    ``window_seconds``, or a chain ``depth`` delegations deep built within it."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    children: Annotated[Int, within("config.detection", 2, 10_000)] = 10
    depth: Annotated[Int, within("config.detection", 2, 64)] = 4
    window_seconds: Window = 60
    severity: Severity = "medium"


@dataclass(frozen=True, slots=True)
class LateralMovementSettings:
    """``[detection.lateral_movement]``: an allowed request to a destination, or a
    delegation to a trust domain, new both to the task's playbook and to the workload's
    history, once each has ``min_history`` events over ``learning_seconds``; at most
    ``max_profiles`` playbooks and workloads of ``max_items`` each are remembered."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    learning_seconds: Annotated[Int, within("config.detection", 0, 90 * 86400, " seconds")] = 86400
    min_history: Count = 20
    max_profiles: Count = 1000
    max_items: Annotated[Int, within("config.detection", 1, 1000)] = 128
    max_tasks: Annotated[Int, within("config.detection", 1, 100_000)] = 10_000
    severity: Severity = "medium"


def _sensitivity(value: str) -> str:
    try:
        return Sensitivity.parse(value).label
    except ValueError as err:
        raise refuse("config.detection", str(err)) from None


def _patterns(values: tuple[str, ...]) -> tuple[str, ...]:
    if not all(values):
        raise refuse("config.detection", "must be a list of patterns, none empty")
    return values


Patterns = Annotated[Texts, AfterValidator(_patterns)]


@dataclass(frozen=True, slots=True)
class ChainStep:
    """One step of a toxic chain: a ``decision`` event of the task matching every
    member given (patterns are shell-style globs, ``*`` any text)."""

    __pydantic_config__ = STRICT

    #: ``details.action`` (``http:POST``, ``mcp:files/read_file``)
    actions: Patterns = ()
    #: ``details.method`` (``POST``)
    methods: Patterns = ()
    #: the MCP tool: ``details.tool`` or ``details.upstream_tool``
    tools: Patterns = ()
    #: ``details.sensitivity`` at least this label
    min_sensitivity: Annotated[str, AfterValidator(_sensitivity)] = "public"
    #: ``details.destination_internal`` false (``external``), true (``internal``), either
    destination: Literal["any", "internal", "external"] = "any"
    #: the decision's outcome: ``allow`` (it happened), ``deny`` or ``any`` (attempted)
    decision: Literal["allow", "deny", "any"] = "allow"


def _steps(steps: tuple[ChainStep, ...]) -> tuple[ChainStep, ...]:
    if not 2 <= len(steps) <= 8:
        raise refuse("config.detection", "a chain has 2 to 8 steps")
    return steps


@dataclass(frozen=True, slots=True)
class ChainRule:
    """A named toxic chain: its ``steps`` in order, within one task."""

    __pydantic_config__ = STRICT

    name: Annotated[Str, AfterValidator(_given_name)]
    steps: Annotated[tuple[ChainStep, ...], AfterValidator(_steps)]


#: the default chains: a read of confidential data then a write to the outside; a file
#: read by an MCP tool then an e-mail sent by one
DEFAULT_CHAINS = (
    ChainRule(
        "confidential_read_then_external_write",
        (
            ChainStep(min_sensitivity="confidential"),
            ChainStep(methods=("POST", "PUT", "PATCH"), destination="external", decision="any"),
        ),
    ),
    ChainRule(
        "mcp_read_file_then_send_email",
        (
            ChainStep(tools=("read_file", "*read_file")),
            ChainStep(tools=("send_email", "*send_email"), decision="any"),
        ),
    ),
)


def _unique_rules(rules: tuple[ChainRule, ...]) -> tuple[ChainRule, ...]:
    names = [r.name for r in rules]
    if len(set(names)) != len(names):
        raise refuse("config.detection", "chain names must be unique")
    return rules


Rules = Annotated[tuple[ChainRule, ...], AfterValidator(_unique_rules)]


@dataclass(frozen=True, slots=True)
class ChainFile:
    """The document ``[detection.toxic_chains] file`` names: ``[[rules]]`` tables."""

    __pydantic_config__ = STRICT

    rules: Rules = ()


@dataclass(frozen=True, slots=True)
class ToxicChainsSettings:
    """``[detection.toxic_chains]``: the steps of a chain (``rules``, and those of the
    TOML ``file``, relative to the home) made by one task within ``window_seconds``;
    at most ``max_tasks`` tasks' partial chains are remembered."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    window_seconds: Window = 3600
    severity: Severity = "high"
    file: Str = ""
    rules: Rules = DEFAULT_CHAINS
    max_tasks: Annotated[Int, within("config.detection", 1, 100_000)] = 10_000


#: where a use came from, as the log records it: the key a proof was signed with, the
#: client certificate presented, and the client's address (should the log name it)
DEFAULT_SOURCES = {
    "jkt": "key",
    "proof_jkt": "key",
    "presented_x5t": "certificate",
    "client_address": "address",
}


@dataclass(frozen=True, slots=True)
class PrivilegeReuseSettings:
    """``[detection.privilege_reuse]``: one credential (a token by ``details.token_id``,
    else its task; a grant lease) used ``factor`` times its baseline rate per
    ``window_seconds`` (at least ``min_uses``, after ``learning_windows`` windows of
    history), from a new source (a ``sources`` member's value), or for a second task."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    window_seconds: Window = 60
    factor: Annotated[Float, within("config.detection", 1.5, 1000)] = 5.0
    min_uses: Count = 30
    learning_windows: Annotated[Int, within("config.detection", 1, 1000)] = 3
    #: the ``details`` members that name where a use came from, each with its kind: a
    #: credential used with a value of a kind it was never used with is a new source
    sources: dict[Str, Annotated[Str, AfterValidator(_given_name)]] = field(
        default_factory=lambda: dict(DEFAULT_SOURCES)
    )
    max_sources: Annotated[Int, within("config.detection", 1, 64)] = 8
    max_credentials: Annotated[Int, within("config.detection", 1, 100_000)] = 10_000
    severity: Severity = "high"


def _field(text: str, low: int, high: int, names: tuple[str, ...] = ()) -> frozenset[int]:
    """A cron field (``*``, ``1-5``, ``0,12,18-20``, ``mon-fri``) as the values it allows."""

    def value(part: str) -> int:
        part = part.strip().lower()
        if part in names:
            return names.index(part)
        if not part.isdigit() or not low <= int(part) <= high:
            raise ValueError(f"{part!r} is not a value of {low}-{high}")
        return int(part)

    found: set[int] = set()
    for item in text.split(","):
        if item.strip() == "*":
            found.update(range(low, high + 1))
            continue
        first, dash, last = item.partition("-")
        start = value(first)
        end = value(last) if dash else start
        if end < start:
            raise ValueError(f"{item!r} is not a range")
        found.update(range(start, end + 1))
    return frozenset(found)


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


def hours_of(text: str) -> frozenset[int]:
    """The hours (0-23) a schedule's ``hours`` allows."""
    return _field(text, 0, 23)


def weekdays_of(text: str) -> frozenset[int]:
    """The weekdays (0 = Monday ... 6 = Sunday) a schedule's ``weekdays`` allows."""
    return _field(text, 0, 6, WEEKDAYS)


def _cron(parse: Any, what: str) -> AfterValidator:
    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError:
            raise refuse("config.detection", f"{what}, not {text!r}") from None
        return text

    return AfterValidator(check)


def _zone(name: str) -> str:
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise refuse("config.detection", f"no time zone {name!r}") from None
    return name


@dataclass(frozen=True, slots=True)
class Schedule:
    """When a scheduled workload or playbook may work: cron-like ``hours`` (0-23) and
    ``weekdays`` (``mon``-``sun``) in ``timezone``."""

    __pydantic_config__ = STRICT

    workload: Str = ""
    playbook: Str = ""
    hours: Annotated[Str, _cron(hours_of, "hours must be a cron hour field: *, 1-5, 0,12")] = "*"
    weekdays: Annotated[
        Str, _cron(weekdays_of, "weekdays must be a cron weekday field: *, mon-fri, sat,sun")
    ] = "*"
    timezone: Annotated[Str, AfterValidator(_zone)] = "UTC"

    @model_validator(mode="after")
    def _named(self) -> Self:
        if not self.workload and not self.playbook:
            raise refuse("config.detection", "a schedule names a workload, a playbook or both")
        return self


@dataclass(frozen=True, slots=True)
class OffWindowSettings:
    """``[detection.off_window]``: an event of a workload or playbook with a schedule,
    outside it; once per ``cooldown_seconds`` per schedule and workload."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    schedules: tuple[Schedule, ...] = ()
    cooldown_seconds: Window = 3600
    max_tasks: Annotated[Int, within("config.detection", 1, 100_000)] = 10_000
    severity: Severity = "medium"


@dataclass(frozen=True, slots=True)
class DormantSettings:
    """``[detection.dormant]``: a workload active again after more than ``days`` days
    without an event; at most ``max_workloads`` are remembered (the longest silent are
    forgotten first)."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    days: Annotated[Float, within("config.detection", 0.01, 3650, " days")] = 30
    max_workloads: Annotated[Int, within("config.detection", 1, 1_000_000)] = 10_000
    severity: Severity = "medium"


@dataclass(frozen=True, slots=True)
class DetectionSettings:
    """``[detection]``: whether the control plane runs the detectors, how often it reads
    the log, and each detector's thresholds."""

    __pydantic_config__ = STRICT

    enabled: Bool = True
    #: seconds between reads of the log when the detectors have caught up
    poll_interval: Annotated[Float, within("config.detection", 0.01, 60, " seconds")] = 0.5
    #: events read (and committed with their detections) at a time
    batch_size: Annotated[Int, within("config.detection", 1, 10_000)] = 500
    replay: ReplaySettings = field(default_factory=ReplaySettings)
    scope_probing: ScopeProbingSettings = field(default_factory=ScopeProbingSettings)
    delegation_fanout: DelegationFanoutSettings = field(default_factory=DelegationFanoutSettings)
    lateral_movement: LateralMovementSettings = field(default_factory=LateralMovementSettings)
    toxic_chains: ToxicChainsSettings = field(default_factory=ToxicChainsSettings)
    privilege_reuse: PrivilegeReuseSettings = field(default_factory=PrivilegeReuseSettings)
    off_window: OffWindowSettings = field(default_factory=OffWindowSettings)
    dormant: DormantSettings = field(default_factory=DormantSettings)

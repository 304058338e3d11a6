"""``[response]``: risk scores from detections, and what the control plane does about
them (see docs/detection.md).

```toml
[response.risk]
half_life_seconds = 3600        # a score halves every hour without new detections
weights = {low = 10, medium = 30, high = 60}

[response.webhook]              # where `alert` posts (signed with HMAC-SHA256)
url = "https://alerts.example.org/zerolane"
secret_env = "ZEROLANE_ALERT_SECRET"

[[response.rules]]
name = "suspend-probers"
detectors = ["scope_probing"]   # any of them (empty: every detector)
min_severity = "medium"         # and at least this severe
min_risk = 0                    # and the risk at least this (the task's; the workload's to disable)
actions = ["alert", "suspend"]  # alert | require_approval | suspend | revoke | disable
```
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Literal, Self
from urllib.parse import urlsplit

from pydantic import AfterValidator, model_validator

from zerolane.settings.detection import Severity
from zerolane.settings.validate import STRICT, Float, Int, Str, Texts, reason, refuse, within

#: the actions a rule may take (``require_approval``: hold the task, each request of it
#: then needs a human approval until an admin releases it, docs/approvals.md)
Action = Annotated[
    Literal["alert", "require_approval", "suspend", "revoke", "disable"],
    reason("config.response_action"),
]
#: a score is 0..100
Score = Annotated[Int, within("config.response", 0, 100)]
#: each severity's weight when ``weights`` does not list it
DEFAULT_WEIGHTS: dict[str, int] = {"low": 10, "medium": 30, "high": 60}
#: severity ranks: a rule's ``min_severity`` matches it and anything above
SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2}


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise refuse("config.response_webhook", "url must be an http(s) URL with a host")
    return value


@dataclass(frozen=True, slots=True)
class RiskSettings:
    """``[response.risk]``: each detection adds its severity's weight to its task's and
    its workload's score (at most 100); scores halve every ``half_life_seconds``.
    Deciders in other processes read the scores again every ``refresh_seconds``."""

    __pydantic_config__ = STRICT

    half_life_seconds: Annotated[Float, within("config.response", 1, 30 * 86400, " seconds")] = (
        3600.0
    )
    weights: dict[Severity, Score] = field(default_factory=dict)
    refresh_seconds: Annotated[Float, within("config.response", 0.05, 60, " seconds")] = 1.0

    def weight(self, severity: str) -> int:
        weights = dict(DEFAULT_WEIGHTS)
        weights.update(self.weights.items())
        return weights.get(severity, 0)


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    """``[response.webhook]``: where ``alert`` posts, the environment variable holding
    the HMAC secret (never in the file, never logged), and how often it tries."""

    __pydantic_config__ = STRICT

    url: Annotated[Str, AfterValidator(_url)] = ""
    secret_env: Str = "ZEROLANE_ALERT_SECRET"  # noqa: S105 (a variable's name)
    timeout_seconds: Annotated[Float, within("config.response", 0.1, 60, " seconds")] = 5.0
    max_attempts: Annotated[Int, within("config.response", 1, 20)] = 5
    #: the pause after the first failure, doubled after each (at most one hour)
    backoff_seconds: Annotated[Float, within("config.response", 0.01, 3600, " seconds")] = 2.0


@dataclass(frozen=True, slots=True)
class ResponseRule:
    """``[[response.rules]]``: when a detection matches every condition given, take
    ``actions``. At least one condition is needed."""

    __pydantic_config__ = STRICT

    name: Str = ""
    detectors: Texts = ()
    min_severity: Severity | None = None
    min_risk: Score | None = None
    actions: tuple[Action, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        if (
            not 0 < len(self.name) <= 64
            or not self.name.replace("-", "").replace("_", "").isalnum()
        ):
            raise refuse("config.response_rule", "name: letters, digits, - and _ only")
        if not self.actions:
            raise refuse("config.response_rule", f"rule {self.name}: needs actions")
        if not self.detectors and self.min_severity is None and self.min_risk is None:
            raise refuse(
                "config.response_rule",
                f"rule {self.name}: needs detectors, min_severity or min_risk",
            )
        return self

    def matches(self, detector: str, severity: str, risk: int) -> bool:
        if self.detectors and detector not in self.detectors:
            return False
        if (
            self.min_severity is not None
            and SEVERITY_RANK.get(severity, -1) < (SEVERITY_RANK[self.min_severity])
        ):
            return False
        return self.min_risk is None or risk >= self.min_risk


@dataclass(frozen=True, slots=True)
class ResponseSettings:
    """``[response]``: risk, the webhook, and the rules, in order."""

    __pydantic_config__ = STRICT

    risk: RiskSettings = field(default_factory=RiskSettings)
    webhook: WebhookSettings = field(default_factory=WebhookSettings)
    rules: tuple[ResponseRule, ...] = ()

    @model_validator(mode="after")
    def _coherent(self) -> Self:
        names = [rule.name for rule in self.rules]
        if len(set(names)) != len(names):
            raise refuse("config.response_rule", f"rule names must be unique: {names}")
        if any("alert" in rule.actions for rule in self.rules) and not self.webhook.url:
            raise refuse("config.response_webhook", "an alert rule needs [response.webhook] url")
        return self

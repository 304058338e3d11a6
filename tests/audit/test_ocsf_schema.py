"""The OCSF export validated against the OCSF schema itself: every mapped kind (both
outcomes) and the events of the real code paths, each against the JSON Schema of its
class in OCSF 1.4.0 (``ocsf-json-schema`` ships the schema.ocsf.io export), with the
profiles the event names applied; and the twin: the same check refuses an event that
breaks its class."""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

import jsonschema
import pytest
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from tests.audit.test_ocsf import all_samples, decision
from zerolane.audit.ocsf import OCSF_VERSION, to_ocsf
from zerolane.store.records import AuditRecord

SAMPLES = list(all_samples())


@lru_cache(maxsize=1)
def _ocsf() -> OcsfJsonSchemaEmbedded:
    return OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION))


@lru_cache(maxsize=64)
def _validator(class_uid: int, profiles: tuple[str, ...]) -> jsonschema.Draft202012Validator:
    schema = _ocsf()
    if class_uid == 0:
        name = "base_event"
    else:
        name = schema.lookup_class_name_from_uid(class_uid=class_uid)
    return jsonschema.Draft202012Validator(
        schema.get_class_schema(class_name=name, profiles=list(profiles))
    )


def problems(event: dict[str, Any]) -> list[str]:
    profiles = tuple(event.get("metadata", {}).get("profiles") or ())
    validator = _validator(int(event["class_uid"]), profiles)
    return [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(event)
    ]


def test_the_export_speaks_the_version_the_schema_package_ships() -> None:
    assert OCSF_VERSION == "1.4.0"
    assert _ocsf().lookup_class_name_from_uid(class_uid=6003) == "api_activity"


@pytest.mark.parametrize(("kind", "record"), SAMPLES, ids=[f"{k}-{r.outcome}" for k, r in SAMPLES])
def test_every_kind_validates_against_its_ocsf_class(kind: str, record: AuditRecord) -> None:
    event = to_ocsf(record)
    assert event["metadata"]["version"] == OCSF_VERSION
    assert problems(event) == [], kind


def test_decisions_allowed_and_denied_validate() -> None:
    allowed = decision({"decision": "allow", "method": "POST", "policies": ["task.request"]})
    denied = decision({"decision": "deny", "method": "GET", "reasons": ["policy.no_permit"]})
    assert problems(allowed) == []
    assert problems(denied) == []


def test_an_event_that_breaks_its_class_is_refused() -> None:
    """The twin: the validator is not a rubber stamp."""
    good = to_ocsf(SAMPLES[0][1])
    assert problems(good) == []
    for broken in (
        {k: v for k, v in good.items() if k != "severity_id"},  # required
        {**good, "time": "yesterday"},  # a timestamp is an integer
        {**good, "metadata": {k: v for k, v in good["metadata"].items() if k != "product"}},
    ):
        assert problems(copy.deepcopy(broken))

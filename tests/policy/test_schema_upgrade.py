"""A home made by an earlier zerolane keeps its copied schema, which has no ``Risk``
type: every decision there fails closed. The decision says why
(``policy.schema_outdated``), and ``upgrade_schema`` replaces an earlier shipped schema
with the shipped one (keeping the old), refuses an edited one unless forced, and never
leaves a set the loader refuses."""

from __future__ import annotations

import datetime as dt
import hashlib
import shutil
from pathlib import Path

import pytest

from tests.policy import factories as f
from zerolane.errors import Conflict, InvalidInput
from zerolane.policy.cedar import CedarEngine
from zerolane.policy.context import request_policy_request
from zerolane.policy.engine import PolicyLoadError
from zerolane.policy.loader import SHIPPED_SCHEMA, load_snapshot
from zerolane.policy.schema_upgrade import (
    COMMAND,
    EARLIER_SHIPPED,
    SCHEMA_OUTDATED,
    SchemaState,
    schema_state,
    upgrade_schema,
)

#: the policy folder ``zerolane init`` wrote before context.risk (release aa0203e)
EARLIER = Path(__file__).with_name("shipped_aa0203e")
NOW = dt.datetime(2026, 12, 8, 1, 2, 3, tzinfo=dt.UTC)


@pytest.fixture
def old_home(tmp_path: Path) -> Path:
    folder = tmp_path / "policies"
    shutil.copytree(EARLIER, folder)
    return folder


def _decide(folder: Path) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    engine = CedarEngine(folder, built_requests=True)
    result = engine.decide(request_policy_request(f.AGENT, f.task(), f.request(), f.NOW))
    return result.allowed, result.reasons, result.errors


def test_a_home_without_risk_says_why_every_decision_fails_then_upgrades(
    old_home: Path,
) -> None:
    check = schema_state(old_home)
    assert (check.state, check.has_risk) == (SchemaState.OUTDATED, False)
    assert check.shipped_by is not None
    assert "aa0203e" in check.shipped_by
    assert check.advice is not None
    assert COMMAND in check.advice
    allowed, reasons, errors = _decide(old_home)  # the attack on nothing: fail closed
    assert not allowed
    assert reasons == (SCHEMA_OUTDATED,)
    assert COMMAND in errors[-1]
    old = (old_home / "schema.cedarschema").read_bytes()
    done = upgrade_schema(old_home, force=False, now=NOW)
    assert (done.before, done.path) == (SchemaState.OUTDATED, old_home / "schema.cedarschema")
    assert done.backup == old_home / "schema.cedarschema.bak-20261208T010203Z"
    assert done.backup.read_bytes() == old
    assert done.path.read_bytes() == SHIPPED_SCHEMA.read_bytes()
    assert schema_state(old_home).state is SchemaState.CURRENT
    assert schema_state(old_home).advice is None
    allowed, reasons, errors = _decide(old_home)  # the home's own policies, now deciding
    assert (allowed, reasons, errors) == (True, (), ())
    again = upgrade_schema(old_home, force=False, now=NOW)  # nothing left to do
    assert (again.before, again.backup) == (SchemaState.CURRENT, None)


def test_an_edited_schema_is_kept_unless_forced(old_home: Path) -> None:
    schema = old_home / "schema.cedarschema"
    edited = b"// ours\n" + schema.read_bytes()
    schema.write_bytes(edited)
    check = schema_state(old_home)
    assert (check.state, check.has_risk) == (SchemaState.EDITED, False)
    assert check.advice is not None
    assert f"{COMMAND} --force" in check.advice
    with pytest.raises(Conflict) as refused:
        upgrade_schema(old_home, force=False, now=NOW)
    assert refused.value.reason == "policy.schema_edited"
    assert "--force" in refused.value.message
    assert schema.read_bytes() == edited  # untouched, no backup
    assert not list(old_home.glob("*.bak-*"))
    forced = upgrade_schema(old_home, force=True, now=NOW)
    assert forced.before is SchemaState.EDITED
    assert forced.backup is not None
    assert forced.backup.read_bytes() == edited
    assert schema.read_bytes() == SHIPPED_SCHEMA.read_bytes()
    # a second backup the same second gets a name of its own
    schema.write_bytes(edited)
    second = upgrade_schema(old_home, force=True, now=NOW)
    assert second.backup == old_home / "schema.cedarschema.bak-20261208T010203Z-2"


def test_policies_that_do_not_load_over_the_shipped_schema_keep_the_old_one(
    old_home: Path,
) -> None:
    schema = old_home / "schema.cedarschema"
    ours = schema.read_text().replace(
        "namespace Zerolane {",
        'namespace Zerolane {\n  action "archive" appliesTo '
        "{ principal: Workload, resource: Resource };",
        1,
    )
    schema.write_text(ours)
    (old_home / "archive.cedar").write_text(
        '@id("archive")\nforbid (principal, action == Zerolane::Action::"archive", resource);\n'
    )
    load_snapshot(old_home)  # it loads as it is
    with pytest.raises(PolicyLoadError):
        upgrade_schema(old_home, force=True, now=NOW)
    assert schema.read_text() == ours  # put back: the home still loads
    assert not list(old_home.glob("*.bak-*"))
    load_snapshot(old_home)


def test_a_change_to_the_shipped_schema_keeps_the_one_it_replaces_upgradable() -> None:
    """Changing ``policy/default/schema.cedarschema`` fails this test until the hash
    below is updated and the replaced schema's hash is added to ``EARLIER_SHIPPED``:
    homes made with it can then be upgraded."""
    shipped = hashlib.sha256(SHIPPED_SCHEMA.read_bytes()).hexdigest()
    assert shipped == "9fdccbc644cabc66df3a7e83a79bc334e23ea2057955b715cb70ddd528e9d1dc"
    assert shipped not in EARLIER_SHIPPED


def test_a_current_schema_with_risk_and_no_schema() -> None:
    current = schema_state(SHIPPED_SCHEMA.parent)
    assert (current.state, current.has_risk, current.advice) == (SchemaState.CURRENT, True, None)
    assert len(EARLIER_SHIPPED) == 4


def test_an_edited_schema_with_risk_needs_nothing(tmp_path: Path) -> None:
    (tmp_path / "schema.cedarschema").write_bytes(b"// ours\n" + SHIPPED_SCHEMA.read_bytes())
    check = schema_state(tmp_path)
    assert (check.state, check.has_risk, check.advice) == (SchemaState.EDITED, True, None)


def test_a_folder_without_a_schema(tmp_path: Path) -> None:
    assert schema_state(tmp_path).state is SchemaState.MISSING
    assert schema_state(tmp_path).advice is None
    with pytest.raises(InvalidInput) as missing:
        upgrade_schema(tmp_path, force=True, now=NOW)
    assert missing.value.reason == "policy.schema_missing"


def test_a_schema_that_cannot_be_read_leaves_the_error_as_it_is(old_home: Path) -> None:
    engine = CedarEngine(old_home, built_requests=True)
    schema = old_home / "schema.cedarschema"
    schema.unlink()
    schema.mkdir()  # unreadable now: the hint is left out, the deny stands
    result = engine.decide(request_policy_request(f.AGENT, f.task(), f.request(), f.NOW))
    assert (result.allowed, result.reasons) == (False, ())
    assert result.errors


def test_a_link_at_the_temporary_name_is_never_written_through(
    old_home: Path, tmp_path: Path
) -> None:
    """Someone who may write the policy folder leaves a link where the upgrade writes
    its temporary file: the file it points to is untouched (content and mode), and the
    schema is upgraded all the same, as it is without the link."""
    victim = tmp_path / "victim"
    victim.write_bytes(b"keep me")
    victim.chmod(0o600)
    (old_home / ".schema.cedarschema.upgrade").symlink_to(victim)
    done = upgrade_schema(old_home, force=False, now=NOW)
    assert victim.read_bytes() == b"keep me"
    assert victim.stat().st_mode & 0o777 == 0o600
    assert done.path.read_bytes() == SHIPPED_SCHEMA.read_bytes()
    assert not done.path.is_symlink()
    assert done.path.stat().st_mode & 0o777 == 0o644
    assert not (old_home / ".schema.cedarschema.upgrade").exists()

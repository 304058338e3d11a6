"""Loading refuses a whole set on any problem; each refusal has a valid twin that loads."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.policy.conftest import PERMIT, TINY_SCHEMA, write_set
from zerolane.policy import loader
from zerolane.policy.defaults import DEFAULT_POLICY_DIR
from zerolane.policy.engine import PolicyLoadError
from zerolane.policy.loader import load_snapshot

FORBID = '@id("{id}")\nforbid (principal, action, resource) when {{ {cond} }};\n'

REFUSED = [
    # (case, files, reason, text the message must name)
    ("syntax error", {"a.cedar": PERMIT + "permit (principal"}, "policy.invalid", "a.cedar"),
    (
        "String compared to Long",
        {"a.cedar": PERMIT + FORBID.format(id="bad.cmp", cond="context.task.state > 3")},
        "policy.invalid",
        "a.cedar:3:1: [bad.cmp]",
    ),
    (
        "unknown attribute",
        {"a.cedar": PERMIT + FORBID.format(id="bad.attr", cond="context.task.nope == 1")},
        "policy.invalid",
        "a.cedar:3:1: [bad.attr]",
    ),
    (
        "unknown entity type",
        {"a.cedar": PERMIT + '@id("bad.type")\npermit (principal == User::"x", action, resource);'},
        "policy.invalid",
        "bad.type",
    ),
    (
        "template",
        {"a.cedar": PERMIT + '@id("tpl")\npermit (principal == ?principal, action, resource);'},
        "policy.invalid",
        "templates are not supported",
    ),
    ("missing @id", {"a.cedar": "permit (principal, action, resource);"}, "policy.missing_id", ""),
    (
        "empty @id",
        {"a.cedar": '@id("")\npermit (principal, action, resource);'},
        "policy.missing_id",
        "",
    ),
    ("duplicate @id in one file", {"a.cedar": PERMIT + PERMIT}, "policy.duplicate_id", "allow.all"),
    (
        "duplicate @id across files",
        {"a.cedar": PERMIT, "b.cedar": PERMIT},
        "policy.duplicate_id",
        "also used in a.cedar",
    ),
    ("no policies", {"a.cedar": "// nothing here\n"}, "policy.empty", ""),
]

WORKLOAD_X = '@id("ok")\npermit (principal == Zerolane::Workload::"x", action, resource);'
TWINS = [
    ("syntax error", {"a.cedar": PERMIT + '@id("b")\npermit (principal, action, resource);'}),
    (
        "String compared to Long",
        {"a.cedar": PERMIT + FORBID.format(id="ok", cond="context.task.level > 3")},
    ),
    (
        "unknown attribute",
        {"a.cedar": PERMIT + FORBID.format(id="ok", cond='context.task.state == "x"')},
    ),
    ("unknown entity type", {"a.cedar": PERMIT + WORKLOAD_X}),
    ("ids unique", {"a.cedar": PERMIT, "b.cedar": PERMIT.replace("allow.all", "allow.b")}),
]


@pytest.mark.parametrize(("case", "files", "reason", "named"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refused(tmp_path: Path, case: str, files: dict[str, str], reason: str, named: str) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(write_set(tmp_path / "p", files))
    assert caught.value.reason == reason
    assert named in caught.value.message
    assert caught.value.errors


@pytest.mark.parametrize(("case", "files"), TWINS, ids=[t[0] for t in TWINS])
def test_valid_twin_loads(tmp_path: Path, case: str, files: dict[str, str]) -> None:
    snapshot = load_snapshot(write_set(tmp_path / "p", files))
    assert len(snapshot.policies) == len(snapshot.policy_ids) >= 1


def test_missing_schema(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(write_set(tmp_path / "p", {"a.cedar": PERMIT}, schema=None))
    assert caught.value.reason == "policy.schema_missing"
    assert load_snapshot(write_set(tmp_path / "q", {"a.cedar": PERMIT})).policy_ids == (
        "allow.all",
    )


def test_schema_syntax_error(tmp_path: Path) -> None:
    folder = write_set(tmp_path / "p", {"a.cedar": PERMIT}, schema="namespace Zerolane {")
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(folder)
    assert caught.value.reason == "policy.schema_invalid"


def test_not_a_directory(tmp_path: Path) -> None:
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(tmp_path / "absent")
    assert caught.value.reason == "policy.no_directory"


def test_every_problem_is_listed(tmp_path: Path) -> None:
    files = {
        "a.cedar": PERMIT + FORBID.format(id="bad.cmp", cond="context.task.state > 3"),
        "b.cedar": "permit (principal",
        "c.cedar": "permit (principal, action, resource);",
    }
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(write_set(tmp_path / "p", files))
    err = caught.value
    assert err.reason == "policy.invalid"
    assert [line.split(":")[0].split(" ")[0] for line in err.errors] == [
        "a.cedar",
        "b.cedar",
        "c.cedar",
    ]
    assert err.message == "\n".join(err.errors)


def test_files_read_sorted_and_subfolders_ignored(tmp_path: Path) -> None:
    folder = write_set(
        tmp_path / "p", {"b.cedar": PERMIT, "a.cedar": PERMIT.replace("allow.all", "allow.a")}
    )
    (folder / "tests").mkdir()
    (folder / "tests" / "x.cedar").write_text("not cedar")
    (folder / "notes.txt").write_text("not cedar")
    snapshot = load_snapshot(folder)
    assert snapshot.files == ("a.cedar", "b.cedar")
    assert snapshot.policy_ids == ("allow.a", "allow.all")


def test_comment_at_end_of_file_does_not_swallow_the_next(tmp_path: Path) -> None:
    files = {
        "a.cedar": PERMIT + "// trailing comment",
        "b.cedar": PERMIT.replace("allow.all", "allow.b"),
    }
    snapshot = load_snapshot(write_set(tmp_path / "p", files))
    assert len(snapshot.policies) == 2


def test_version_is_sha256_of_content(tmp_path: Path) -> None:
    one = load_snapshot(write_set(tmp_path / "one", {"a.cedar": PERMIT}))
    two = load_snapshot(write_set(tmp_path / "two", {"a.cedar": PERMIT}))
    assert one.version == two.version
    assert len(one.version) == 64
    assert int(one.version, 16) >= 0
    renamed = load_snapshot(write_set(tmp_path / "three", {"b.cedar": PERMIT}))
    other_schema = load_snapshot(
        write_set(tmp_path / "four", {"a.cedar": PERMIT}, schema=TINY_SCHEMA + "\n")
    )
    assert len({one.version, renamed.version, other_schema.version}) == 3


def test_default_set_loads() -> None:
    snapshot = load_snapshot(DEFAULT_POLICY_DIR)
    assert snapshot.files == ("grant.cedar", "requests.cedar")
    assert "flow.egress_after_sensitive_read" in snapshot.policy_ids


def _write_during_read(monkeypatch: pytest.MonkeyPatch, target: Path, times: int = 1) -> None:
    """Make the loader's next ``times`` file reads each append to ``target`` first."""
    real = loader._read
    left = [times]

    def read(path: Path) -> str:
        if left[0] > 0:
            left[0] -= 1
            with target.open("a") as out:
                out.write("\n// more\n")
        return real(path)

    monkeypatch.setattr(loader, "_read", read)


def test_a_read_that_overlaps_a_write_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_set(tmp_path / "p", {"a.cedar": PERMIT, "b.cedar": ""})
    _write_during_read(monkeypatch, folder / "b.cedar")
    with pytest.raises(PolicyLoadError) as caught:
        loader.read_directory(folder)
    assert caught.value.reason == "policy.changing"
    # the twin: once the writer is done, the same folder reads and loads
    reading = loader.read_directory(folder)
    assert dict(reading.texts)["b.cedar"] == "\n// more\n"
    assert load_snapshot(folder).version == reading.version


def test_a_file_replaced_during_the_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = write_set(tmp_path / "p", {"a.cedar": PERMIT})
    real = loader._read

    def read(path: Path) -> str:  # the folder gains a file between listing and reading
        (folder / "z.cedar").write_text(FORBID.format(id="late", cond="true"))
        return real(path)

    monkeypatch.setattr(loader, "_read", read)
    with pytest.raises(PolicyLoadError) as caught:
        loader.read_directory(folder)
    assert caught.value.reason == "policy.changing"


def test_errors_name_file_line_column_and_the_policys_own_id(tmp_path: Path) -> None:
    """A person opens the file at the line the error names, and sees the @id there,
    not the binding's own ``policyN``."""
    text = (
        PERMIT
        + '\n// a comment with a ; and a "quote\n'
        + FORBID.format(id="ok.first", cond='context.task.state == "active"')
        + FORBID.format(id="bad.attr", cond="context.task.nope == 1")
    )
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(write_set(tmp_path / "p", {"a.cedar": text}))
    line = text[: text.index('@id("bad.attr")')].count("\n") + 1
    assert caught.value.message.startswith(f"a.cedar:{line}:1: [bad.attr] attribute")
    assert "policy" + "2" not in caught.value.message  # no binding-made id

    broken = PERMIT + '\n@id("bad.syntax")\nforbid (principal, action, resource)\nwhen { 1 + };\n'
    with pytest.raises(PolicyLoadError) as caught:
        load_snapshot(write_set(tmp_path / "q", {"a.cedar": broken}))
    line = broken[: broken.index('@id("bad.syntax")')].count("\n") + 1
    assert caught.value.message.startswith(f"a.cedar:{line}:1: syntax error")

"""The toxic-chains detector: a confidential read then an outside write, or a file read
then an e-mail, by one task within the window, fire; other orders, tasks, internal
writes and slow chains do not. Chains come from the settings and a file."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.detection.recorded import Recorder, run, seqs
from zerolane.detection import toxic_chains
from zerolane.detection.seen import Seen
from zerolane.detection.toxic_chains import Shape, Step, ToxicChainsDetector, load_rules
from zerolane.errors import InvalidInput
from zerolane.settings.detection import (
    DEFAULT_CHAINS,
    ChainRule,
    ChainStep,
    ToxicChainsSettings,
)
from zerolane.types import Outcome

SETTINGS = ToxicChainsSettings(window_seconds=600)


def http(
    log: Recorder,
    at: float,
    method: str,
    *,
    sensitivity: str = "internal",
    internal: bool = True,
    task: str = "tsk_1",
    allowed: bool = True,
) -> None:
    log.add(
        "decision",
        at,
        subject=task,
        outcome=Outcome.SUCCESS if allowed else Outcome.DENIED,
        details={
            "action": f"http:{method}",
            "method": method,
            "destination": "api.internal" if internal else "paste.example.com",
            "destination_internal": internal,
            "sensitivity": sensitivity,
        },
    )


def tool(log: Recorder, at: float, name: str, *, task: str = "tsk_1", allowed: bool = True) -> None:
    log.add(
        "decision",
        at,
        subject=task,
        outcome=Outcome.SUCCESS if allowed else Outcome.DENIED,
        details={
            "action": f"mcp:files/{name}",
            "method": "POST",
            "tool": f"files_{name}",
            "upstream_tool": name,
            "destination": "mcp.internal",
            "destination_internal": True,
            "sensitivity": "internal",
        },
    )


def detector(settings: ToxicChainsSettings = SETTINGS) -> ToxicChainsDetector:
    return ToxicChainsDetector(settings, load_rules(settings))


def test_a_confidential_read_then_an_outside_post_fires_even_when_the_post_is_denied() -> None:
    log = Recorder()
    http(log, 0, "GET", sensitivity="confidential")
    http(log, 10, "GET")  # an ordinary read in between
    http(log, 20, "POST", internal=False, allowed=False)  # the attempt is the signal
    (found,) = run(detector(), log.records)
    assert found.detector == "toxic_chains"
    assert found.task_id == "tsk_1"
    assert found.details()["chain"] == "confidential_read_then_external_write"
    assert seqs(found) == [1, 3]
    assert found.severity == "high"


def test_the_near_miss_other_orders_tasks_internal_writes_and_slow_chains_do_not() -> None:
    log = Recorder()
    http(log, 0, "POST", internal=False)  # the write before the read
    http(log, 1, "GET", sensitivity="confidential", allowed=False)  # a denied read got nothing
    http(log, 2, "POST", internal=False)
    http(log, 3, "GET", sensitivity="restricted")
    http(log, 4, "POST", internal=True)  # inside
    http(log, 5, "POST", internal=False, task="tsk_2")  # another task
    http(log, 700, "PUT", internal=False)  # out of the window
    tool(log, 800, "send_email")  # no file read before
    tool(log, 801, "read_file", task="tsk_3", allowed=False)
    tool(log, 802, "send_email", task="tsk_3")
    log.add("decision", 900, subject="tsk_1", outcome=Outcome.DENIED, details={"reasons": []})
    log.add("task.opened", 901, subject="tsk_1", outcome=Outcome.SUCCESS, details={"action": "x"})
    assert run(detector(), log.records) == []


def test_an_mcp_file_read_then_an_email_fires() -> None:
    log = Recorder()
    tool(log, 0, "read_file")
    tool(log, 5, "list_dir")
    tool(log, 9, "send_email")
    (found,) = run(detector(), log.records)
    assert found.details()["chain"] == "mcp_read_file_then_send_email"
    assert seqs(found) == [1, 3]


def test_a_chain_fires_once_then_needs_a_new_first_step() -> None:
    log = Recorder()
    http(log, 0, "GET", sensitivity="confidential")
    http(log, 1, "POST", internal=False)
    http(log, 2, "POST", internal=False)  # no new read: no new chain
    http(log, 3, "GET", sensitivity="confidential")
    http(log, 4, "PATCH", internal=False)
    assert [seqs(d) for d in run(detector(), log.records)] == [[1, 2], [4, 5]]


def test_one_event_is_never_two_steps_of_a_chain() -> None:
    both = ChainStep(actions=("http:*",))
    rules = (ChainRule("twice", (both, both, both)),)
    log = Recorder()
    http(log, 0, "GET")
    http(log, 1, "GET")
    found = ToxicChainsDetector(SETTINGS, rules)
    assert run(found, log.records) == []
    http(log, 2, "GET")
    assert [seqs(d) for d in run(found, log.records[2:])] == [[1, 2, 3]]


def test_steps_match_on_what_the_events_record() -> None:
    log = Recorder()
    http(log, 0, "GET", sensitivity="weird")
    shape = Shape.of(Seen.of(log.records[0]))
    assert Step(ChainStep(methods=("GET",), decision="any")).matches(shape)
    assert not Step(ChainStep(methods=("POST",))).matches(shape)
    assert not Step(ChainStep(actions=("mcp:*",))).matches(shape)
    assert Step(ChainStep(actions=("http:*",))).matches(shape)
    assert not Step(ChainStep(tools=("*",))).matches(shape)
    assert not Step(ChainStep(min_sensitivity="internal")).matches(shape)
    assert Step(ChainStep(destination="internal")).matches(shape)
    assert not Step(ChainStep(decision="deny")).matches(shape)


def test_chains_come_from_a_file_too(tmp_path: Path) -> None:
    (tmp_path / "chains.toml").write_text(
        '[[rules]]\nname = "db_then_mail"\n'
        '[[rules.steps]]\nactions = ["http:GET"]\nmin_sensitivity = "restricted"\n'
        '[[rules.steps]]\ntools = ["send_email"]\ndecision = "any"\n'
    )
    settings = ToxicChainsSettings(file="chains.toml", rules=())
    rules = load_rules(settings, tmp_path)
    assert [r.name for r in rules] == ["db_then_mail"]
    log = Recorder()
    http(log, 0, "GET", sensitivity="restricted")
    tool(log, 1, "send_email", allowed=False)
    (found,) = run(ToxicChainsDetector(settings, rules), log.records)
    assert found.details()["chain"] == "db_then_mail"
    absolute = ToxicChainsSettings(file=str(tmp_path / "chains.toml"))
    assert len(load_rules(absolute)) == len(DEFAULT_CHAINS) + 1


def test_a_missing_bad_or_clashing_chain_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as missing:
        load_rules(ToxicChainsSettings(file="nope.toml"), tmp_path)
    assert missing.value.reason == "config.detection"
    (tmp_path / "bad.toml").write_text("rules = [")
    with pytest.raises(InvalidInput) as bad:
        load_rules(ToxicChainsSettings(file="bad.toml"), tmp_path)
    assert bad.value.reason == "config.detection"
    (tmp_path / "odd.toml").write_text('[[rules]]\nname = "x"\nsteps = [{}]\nextra = 1\n')
    with pytest.raises(InvalidInput) as odd:
        load_rules(ToxicChainsSettings(file="odd.toml"), tmp_path)
    assert "unknown key" in str(odd.value)
    name = DEFAULT_CHAINS[0].name
    (tmp_path / "clash.toml").write_text(
        f'[[rules]]\nname = "{name}"\n[[rules.steps]]\n[[rules.steps]]\n'
    )
    with pytest.raises(InvalidInput, match="named twice"):
        load_rules(ToxicChainsSettings(file="clash.toml"), tmp_path)


def test_its_partial_chains_survive_a_restart_and_old_ones_are_dropped() -> None:
    log = Recorder()
    http(log, 0, "GET", sensitivity="confidential", task="tsk_old")
    http(log, 1000, "GET", sensitivity="confidential")
    first = detector()
    assert run(first, log.records) == []
    state = first.state()
    assert list(state["tasks"]) == ["tsk_1"]  # tsk_old's chain left the window
    second = detector()
    second.restore(state)
    http(log, 1001, "POST", internal=False)
    assert [seqs(d) for d in run(second, log.records[2:])] == [[2, 3]]
    changed = ToxicChainsDetector(
        SETTINGS, (ChainRule(DEFAULT_CHAINS[0].name, (ChainStep(),) * 3),)
    )
    changed.restore(state)  # a chain of another length: its progress is void
    assert changed.state() == {"tasks": {}}


def test_a_full_memory_of_request_shapes_is_forgotten_and_matched_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(toxic_chains, "MEMO", 1)
    log = Recorder()
    http(log, 0, "GET", sensitivity="confidential")
    http(log, 1, "GET")
    http(log, 2, "POST", internal=False)
    assert [seqs(d) for d in run(detector(), log.records)] == [[1, 3]]


def test_a_member_of_another_type_reads_as_absent_and_the_chain_still_fires() -> None:
    log = Recorder()
    http(log, 0, "GET", sensitivity="confidential")
    log.add(  # a malformed tool member (a list): no tool, and the POST still counts
        "decision",
        20,
        subject="tsk_1",
        outcome=Outcome.SUCCESS,
        details={"action": "http:POST", "method": "POST", "tool": ["x"],
                 "destination_internal": False},
    )  # fmt: skip
    found = detector()
    assert [d.detector for d in run(found, log.records)] == ["toxic_chains"]
    http(log, 30, "POST", internal=False)  # the same shape again: read from the memo
    assert run(found, log.records[-1:]) == []  # the chain starts again from its first step

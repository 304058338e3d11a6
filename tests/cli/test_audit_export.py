"""``zerolane audit export``: the log as OCSF or stored JSON lines, to a 0600 file or
stdout, from ``--after``, and ``--follow`` across processes until SIGTERM or Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from zerolane.cli.main import app
from zerolane.server.deployment import init_home

runner = CliRunner()
ZEROLANE = [sys.executable, "-m", "zerolane"]
#: a second process appending ``count`` events to a home's log in small batches
APPEND = """
import sys, time
from pathlib import Path
from zerolane.audit.events import SYSTEM
from zerolane.audit.log import AuditLog
from zerolane.config import load_config
from zerolane.store.open import open_stores
home, count = Path(sys.argv[1]), int(sys.argv[2])
stores = open_stores(load_config(home).store_url, base=home)
log = AuditLog(stores, type("Clock", (), {"now": staticmethod(time.time)})())
from zerolane.types import Outcome
for n in range(count):
    log.record("policy.reloaded", actor=SYSTEM, subject=f"v{n}", outcome=Outcome.SUCCESS,
               details={"version": n})
    if n % 7 == 0:
        time.sleep(0.01)
stores.close()
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    deployment, _ = init_home(tmp_path / "home", "example.org")
    deployment.close()
    return tmp_path / "home"


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["audit", "export", *args])
    return result.exit_code, result.stdout, result.stderr


def events_in(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines()]


def append_events(home: Path, count: int) -> None:
    subprocess.run([sys.executable, "-c", APPEND, str(home), str(count)], check=True, timeout=60)


def test_the_log_is_exported_as_ocsf_on_stdout_by_default(home: Path) -> None:
    code, out, err = invoke("--home", str(home))
    assert code == 0, err
    [event] = events_in(out)  # init_home records one event
    assert event["class_uid"] == 3004
    assert event["metadata"]["sequence"] == 1  # type: ignore[index]
    assert "exported through sequence number 1" in err


def test_the_json_format_is_each_event_as_stored(home: Path) -> None:
    append_events(home, 2)
    code, out, _ = invoke("--home", str(home), "--format", "json")
    assert code == 0
    events = events_in(out)
    assert [e["seq"] for e in events] == [1, 2, 3]
    assert events[1]["kind"] == "policy.reloaded"
    assert all(isinstance(e["hash"], str) for e in events)


def test_after_starts_past_that_sequence_number(home: Path) -> None:
    append_events(home, 4)
    code, out, err = invoke("--home", str(home), "--after", "3")
    assert code == 0
    assert [e["metadata"]["sequence"] for e in events_in(out)] == [4, 5]  # type: ignore[index]
    assert "exported through sequence number 5" in err
    code, out, err = invoke("--home", str(home), "--after", "5")
    assert (code, out) == (0, "")
    assert "exported through sequence number 5" in err


def test_the_output_file_is_created_0600_and_appended_to(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "siem" / "zerolane.ocsf.jsonl"
    target.parent.mkdir()
    code, out, _ = invoke("--home", str(home), "--output", str(target))
    assert (code, out) == (0, "")
    assert target.stat().st_mode & 0o777 == 0o600
    append_events(home, 1)
    assert invoke("--home", str(home), "-o", str(target), "--after", "1")[0] == 0
    sequences = [e["metadata"]["sequence"] for e in events_in(target.read_text())]  # type: ignore[index]
    assert sequences == [1, 2]


def test_an_existing_output_file_wider_than_0600_is_narrowed(home: Path, tmp_path: Path) -> None:
    target = tmp_path / "wide.jsonl"
    target.write_text("")
    target.chmod(0o644)
    assert invoke("--home", str(home), "-o", str(target))[0] == 0
    assert target.stat().st_mode & 0o777 == 0o600
    assert len(events_in(target.read_text())) == 1


def test_an_output_that_is_a_symbolic_link_is_refused(home: Path, tmp_path: Path) -> None:
    """Followed, it would append to (and narrow) whatever file it names."""
    victim = tmp_path / "victim"
    victim.write_text("precious\n")
    victim.chmod(0o640)
    link = tmp_path / "audit.jsonl"
    link.symlink_to(victim)
    code, out, err = invoke("--home", str(home), "-o", str(link))
    assert out == ""
    assert code == 2
    assert "error audit.output_symlink" in err
    assert victim.read_text() == "precious\n"
    assert victim.stat().st_mode & 0o777 == 0o640
    assert invoke("--home", str(home), "-o", str(victim))[0] == 0  # the file itself: fine


def test_a_pipe_is_written_to_and_its_mode_left_alone(home: Path, tmp_path: Path) -> None:
    """Only a regular file is narrowed to 0600 (``-o /dev/null`` run as root must not
    change /dev/null)."""
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo, 0o644)
    fifo.chmod(0o644)
    read: list[str] = []
    reader = threading.Thread(target=lambda: read.append(fifo.read_text()))
    reader.start()
    code, _, err = invoke("--home", str(home), "-o", str(fifo))
    reader.join(10)
    assert code == 0, err
    assert len(events_in(read[0])) == 1
    assert fifo.stat().st_mode & 0o777 == 0o644


@pytest.mark.parametrize(
    ("args", "problem"),
    [
        (["--format", "cef"], "'cef' is not one of 'ocsf', 'json'"),
        (["--format", ""], "--format"),
        (["--after", "-1"], "--after"),
        (["--after", "ten"], "--after"),
        (["--after", str(2**63)], "--after"),
        (["--poll", "0"], "--poll"),
    ],
)
def test_a_bad_option_is_a_usage_error_naming_it(home: Path, args: list[str], problem: str) -> None:
    code, out, err = invoke("--home", str(home), *args)
    assert code == 2
    assert out == ""
    assert "error cli.usage" in err
    assert problem in err
    assert "Traceback" not in err


def test_a_missing_home_is_refused(tmp_path: Path) -> None:
    code, out, err = invoke("--home", str(tmp_path / "nowhere"))
    assert code == 2
    assert out == ""
    assert "home.missing" in err


def test_an_output_that_cannot_be_opened_is_a_clear_error(home: Path, tmp_path: Path) -> None:
    code, _, err = invoke("--home", str(home), "-o", str(tmp_path / "no" / "such" / "dir.jsonl"))
    assert code == 1
    assert "error os.enoent" in err
    assert "Traceback" not in err


def wait_for_lines(path: Path, count: int, timeout: float = 60.0) -> list[str]:
    deadline = time.monotonic() + timeout
    lines: list[str] = []
    while time.monotonic() < deadline:
        lines = path.read_text().splitlines() if path.exists() else []
        if len(lines) >= count:
            return lines
        time.sleep(0.05)
    raise AssertionError(f"{len(lines)} of {count} lines after {timeout} s")


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_following_across_processes_loses_and_repeats_nothing(
    home: Path, tmp_path: Path, stop: signal.Signals
) -> None:
    target = tmp_path / "follow.jsonl"
    follow = ["--follow", "--poll", "0.05", "-o", str(target)]
    follower = subprocess.Popen(
        [*ZEROLANE, "audit", "export", "--home", str(home), *follow],
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_lines(target, 1)  # following: the first event is out
        writers = [
            subprocess.Popen([sys.executable, "-c", APPEND, str(home), "60"]) for _ in range(2)
        ]
        for writer in writers:
            assert writer.wait(timeout=60) == 0
        wait_for_lines(target, 121)
        follower.send_signal(stop)
        _, err = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:  # pragma: no cover (only when the test failed)
            follower.kill()
            follower.wait()
    assert follower.returncode == 0, err
    assert "exported through sequence number 121" in err
    lines = target.read_text().splitlines()
    sequences = [json.loads(line)["metadata"]["sequence"] for line in lines]
    assert sequences == list(range(1, 122))  # every event once, in order
    assert target.stat().st_mode & 0o777 == 0o600
    assert os.path.getsize(target) == sum(len(line) + 1 for line in lines)  # whole lines


def test_following_in_process_stops_on_sigterm_and_restores_the_handlers(home: Path) -> None:
    """The follower's own loop (the test above runs it in a child process)."""
    before = signal.getsignal(signal.SIGTERM)
    done = threading.Event()

    def terminate_once_following() -> None:
        # only once the export's handler is in place: a SIGTERM before would end pytest
        while not done.is_set():
            if signal.getsignal(signal.SIGTERM) is not before:
                os.kill(os.getpid(), signal.SIGTERM)
                return
            done.wait(0.01)

    killer = threading.Thread(target=terminate_once_following)
    killer.start()
    try:
        code, out, err = invoke("--home", str(home), "--follow", "--poll", "0.05")
    finally:
        done.set()
        killer.join(5)
    assert code == 0, err
    assert len(events_in(out)) == 1
    assert "exported through sequence number 1" in err
    assert signal.getsignal(signal.SIGTERM) is before


def test_off_the_main_thread_no_handler_is_installed() -> None:
    """Signals reach only the main thread: an export run from another (a test runner's
    worker) is stopped by its caller, and leaves the handlers alone."""
    from zerolane.cli.audit import _stop_on_signals

    before = signal.getsignal(signal.SIGTERM)
    seen: list[bool] = []

    def run() -> None:
        with _stop_on_signals() as stop:
            seen.append(stop.is_set())
            seen.append(signal.getsignal(signal.SIGTERM) is before)

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(5)
    assert seen == [False, True]

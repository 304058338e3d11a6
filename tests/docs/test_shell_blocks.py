"""Every shell block of README.md and docs/*.md runs as written on a fresh clone.

The conventions the pages follow (and this test enforces):

- Every fenced block names its language: ``sh``, ``bash`` and ``console`` blocks are
  commands and run; diagrams, synopses and output are ``text`` (or their own format:
  ``toml``, ``json``, ``python``...). A bare fence is refused, so no command hides.
- In a ``console`` block the lines starting with ``$ `` are the commands (a line ending
  in ``\\`` continues on the next); the other lines show output and are not run.
- A command block that cannot run here says why on the line before it:
  ``<!-- not run: needs nginx -->``. Few blocks may (``MAX_NOT_RUN``), each with a reason.
- A command started in the background (a line ending in ``&``, before any ``#`` comment)
  names the port it listens on in that line, e.g. ``zerolane up &  # ... 127.0.0.1:8700``:
  the blocks wait until that port accepts connections before going on (a reader waits for
  the line the server prints).
- ``path/to/zerolane`` stands for the reader's clone.
- A ``text`` block right after ``<!-- output -->`` is output the page's commands print:
  each of its lines must be a line of what they printed.

How a page runs: its blocks, in order, in one ``bash -e -o pipefail`` (so a failing
command fails the page), with a time bound, in a fresh clone: a temporary folder holding
a copy of ``examples/``, ``Makefile``, ``pyproject.toml``, ``uv.lock`` and ``.gitignore``,
with ``.venv`` and ``.tools`` linked to this checkout's (so ``make install`` has nothing
to do), under ``git`` so that the test can tell what the blocks left behind. No
``ZEROLANE_HOME``: the home is the clone's ``./.zerolane``, as for a reader. A page that
never runs ``zerolane init`` reads a home made first (trust domain
``demo.zerolane.dev``). A trap stops whatever the blocks started in the background, and
the whole process group is killed at the end.

Ports: the pages use the defaults (control plane 8700, HTTP gateway 8800, MCP gateway
8801, sample tool API 9100, sample MCP server 9200). So that a run never collides with
another (tests bind free ports only), each of those numbers is replaced by a free port in
the blocks and in the clone's ``examples/``, and ``zerolane up`` without ``--port`` gets
``--port`` the control plane's (the home's config says 8700).

After the README ran, ``git status`` in the clone must be clean: whatever its blocks made
is ignored by ``.gitignore`` (the quickstart's ``token``, ``edge``, ``.zerolane/``). The
other pages show commands for a deployment as well (``keys ca --pem > zerolane-ca.pem``),
so they are not held to it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SHELL = {"sh", "bash", "console"}
DOC_PORTS = (8700, 8800, 8801, 9100, 9200)
CONTROL_PLANE = 8700
#: the command blocks the pages may leave unrun, all pages together (today: make test,
#: a production layout and its `up`, a delegation by hand): raise it only with a reason
MAX_NOT_RUN = 4
#: the longest one page's blocks may take, in seconds
PAGE_TIMEOUT = 90.0
NOT_RUN = re.compile(r"^<!--\s*not run:\s*(?P<why>\S.*?)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[^\s`]*)\s*$")
CLONE_FILES = ("Makefile", "pyproject.toml", "uv.lock", ".gitignore")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    lang: str
    body: str
    not_run: str | None  # the reason, for a block marked not run
    output: bool = False  # a text block marked as output the commands print

    @property
    def where(self) -> str:
        name = self.page.relative_to(ROOT) if self.page.is_relative_to(ROOT) else self.page
        return f"{name}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a page, with their language and not-run marker."""
    lines = page.read_text().splitlines()
    found: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if opening is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        if end == len(lines):
            raise AssertionError(f"{page}:{index + 1}: fence never closed")
        indent = len(opening.group("indent"))
        body = "\n".join(text[indent:] for text in lines[index + 1 : end])
        before = lines[index - 1].strip() if index > 0 else ""
        marker = NOT_RUN.match(before)
        why = marker.group("why") if marker else None
        output = before == "<!-- output -->"
        found.append(Block(page, index + 1, opening.group("lang"), body, why, output))
        index = end + 1
    return found


def commands(block: Block) -> str:
    """The shell text a block runs: all of it, or a console block's ``$`` lines."""
    if block.lang != "console":
        return block.body
    out: list[str] = []
    continued = False
    for text in block.body.splitlines():
        if continued:
            out.append(text)
        elif text.startswith("$ "):
            out.append(text[2:])
        else:
            continue
        continued = text.endswith("\\")
    return "\n".join(out)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


PORT_WORD = re.compile(r"(?<![0-9])(" + "|".join(str(p) for p in DOC_PORTS) + r")(?![0-9])")
BACKGROUND = re.compile(r"&\s*(#.*)?$")
UP = re.compile(r"\bzerolane up\b(?![^#]*--port)")


def script(page: Path, ports: dict[int, int], clone: Path) -> str:
    """The bash script that runs a page's command blocks, ports mapped, servers awaited."""
    lines: list[str] = []
    for block in blocks(page):
        if block.lang not in SHELL or block.not_run is not None:
            continue
        lines.append(f"echo '### {block.where}' >&2")
        for text in commands(block).replace("path/to/zerolane", str(clone)).splitlines():
            mentioned = [int(p) for p in PORT_WORD.findall(text)]
            text = PORT_WORD.sub(lambda m: str(ports[int(m.group(1))]), text)
            text = UP.sub(f"zerolane up --port {ports[CONTROL_PLANE]}", text)
            lines.append(text)
            if BACKGROUND.search(text) and not text.lstrip().startswith("#"):
                if not mentioned:
                    raise AssertionError(
                        f"{block.where}: a background command names no port it listens on: "
                        f"{text.strip()}"
                    )
                lines.append("__zl_wait " + " ".join(str(ports[p]) for p in mentioned))
    return PRELUDE + "\n".join(lines) + "\n"


PRELUDE = r"""
set -e -o pipefail
__zl_stop() { local jobs; jobs=$(jobs -p); [ -z "$jobs" ] || { kill $jobs 2>/dev/null; wait; }; }
trap __zl_stop EXIT
__zl_wait() {
    local job=$! port deadline=$((SECONDS + 20))
    for port in "$@"; do
        until (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; do
            kill -0 "$job" 2>/dev/null || { echo "job ended before :$port" >&2; exit 1; }
            [ "$SECONDS" -lt "$deadline" ] || { echo "nothing listens on :$port" >&2; exit 1; }
            sleep 0.1
        done
    done
}
"""


def rewrite_ports(folder: Path, ports: dict[int, int]) -> None:
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".toml", ".yaml", ".yml", ".json"}:
            text = path.read_text()
            mapped = PORT_WORD.sub(lambda m: str(ports[int(m.group(1))]), text)
            if mapped != text:
                path.write_text(mapped)


def git(clone: Path, *args: str) -> str:
    result = subprocess.run(
        ["git", *args], cwd=clone, capture_output=True, text=True, check=True, timeout=30
    )
    return result.stdout


def make_clone(tmp_path: Path) -> Path:
    """A fresh clone as a reader has it after ``make install``."""
    made = subprocess.run(
        ["make", "-q", "install"], cwd=ROOT, capture_output=True, timeout=30, check=False
    )
    assert made.returncode == 0, "the venv is not up to date: run `make install` first"
    here = tmp_path / "zerolane"
    here.mkdir()
    skip = shutil.ignore_patterns("__pycache__", "secrets")
    shutil.copytree(ROOT / "examples", here / "examples", ignore=skip)
    for name in CLONE_FILES:
        shutil.copy2(ROOT / name, here / name)  # keeps the times: `make install` is a no-op
    for name in (".venv", ".tools"):
        (here / name).symlink_to(ROOT / name)
    git(here, "init", "-q")
    (here / ".git" / "info" / "exclude").write_text("/.venv\n/.tools\n")
    commit(here, "clone")
    return here


def commit(clone: Path, message: str) -> None:
    git(clone, "add", "-A")
    identity = ["-c", "user.name=docs", "-c", "user.email=docs@test.invalid"]
    git(clone, *identity, "commit", "-q", "--allow-empty", "-m", message)


@pytest.fixture
def clone(tmp_path: Path) -> Path:
    return make_clone(tmp_path)


def run_page(page: Path, clone: Path, *, home: bool = True) -> subprocess.CompletedProcess[str]:
    ports = {port: free_port() for port in DOC_PORTS}
    rewrite_ports(clone / "examples", ports)
    commit(clone, "ports")
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ZEROLANE_") and key not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    env |= {"PATH": f"{ROOT / '.venv' / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"}
    env |= {"HOME": str(clone.parent), "NO_COLOR": "1", "COLUMNS": "200"}
    runnable = [b for b in blocks(page) if b.lang in SHELL and b.not_run is None]
    if home and not any("zerolane init" in commands(b) for b in runnable):
        made = subprocess.run(
            ["zerolane", "init", "--trust-domain", "demo.zerolane.dev"],
            cwd=clone,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert made.returncode == 0, made.stderr
    process = subprocess.Popen(
        ["bash", "-c", script(page, ports, clone)],
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=PAGE_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        raise AssertionError(
            f"{page.name}: blocks still running after {PAGE_TIMEOUT} s\n{out}\n{err}"
        ) from None
    finally:
        stop_group(process.pid)
    return subprocess.CompletedProcess(process.args, process.returncode, out, err)


def stop_group(group: int) -> None:
    """Stop what the page left running in its process group: TERM, then KILL."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def unprinted(page: Path, stdout: str) -> list[str]:
    """The lines of the page's ``<!-- output -->`` blocks that the commands did not print."""
    printed = set(stdout.splitlines())
    shown = [text for b in blocks(page) if b.output for text in b.body.splitlines() if text]
    return [text for text in shown if text not in printed]


RUNNABLE = [
    page for page in PAGES if any(b.lang in SHELL and b.not_run is None for b in blocks(page))
]


@pytest.mark.e2e
@pytest.mark.parametrize("page", RUNNABLE, ids=lambda page: page.name)
def test_shell_blocks_run_as_written(page: Path, clone: Path) -> None:
    result = run_page(page, clone)
    assert result.returncode == 0, (
        f"{page.name}: a block failed (exit {result.returncode})\n"
        f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    missing = unprinted(page, result.stdout)
    assert missing == [], f"{page.name}: shown as output, not printed: {missing}\n{result.stdout}"
    if page.name == "README.md":  # the other pages' commands run in a deployment too
        left = git(clone, "status", "--porcelain", "--untracked-files=all")
        assert left == "", f"{page.name}: the blocks left files git does not ignore:\n{left}"


def test_every_block_names_its_language() -> None:
    bare = [b.where for page in PAGES for b in blocks(page) if b.lang == ""]
    assert bare == [], f"fenced blocks without a language (text, sh, toml, ...): {bare}"


def test_output_markers_stand_before_text_blocks() -> None:
    marked = [b for page in PAGES for b in blocks(page) if b.output]
    assert all(b.lang == "text" for b in marked), [b.where for b in marked if b.lang != "text"]


def test_blocks_not_run_are_few_and_say_why() -> None:
    skipped = [b for page in PAGES for b in blocks(page) if b.not_run is not None]
    assert all(b.lang in SHELL for b in skipped), [b.where for b in skipped if b.lang not in SHELL]
    assert len(skipped) <= MAX_NOT_RUN, [f"{b.where}: {b.not_run}" for b in skipped]


def test_the_readme_snippet_is_the_example_it_runs() -> None:
    snippet = [b for b in blocks(ROOT / "README.md") if b.lang == "python"]
    assert len(snippet) == 1
    assert snippet[0].body + "\n" == (ROOT / "examples" / "quickstart.py").read_text()


# the harness itself: a failing block fails its page, servers are awaited and stopped


def page_of(tmp_path: Path, *bodies: str) -> Path:
    page = tmp_path / "page.md"
    page.write_text("".join(f"```sh\n{body}\n```\n\n" for body in bodies))
    return page


def test_a_failing_command_fails_the_page(tmp_path: Path) -> None:
    page = page_of(tmp_path, "echo first", "false\necho after")
    result = run_page(page, make_clone(tmp_path), home=False)
    assert result.returncode != 0
    assert result.stdout == "first\n"


def test_a_failing_command_inside_a_pipe_fails_the_page(tmp_path: Path) -> None:
    result = run_page(page_of(tmp_path, "false | cat"), make_clone(tmp_path), home=False)
    assert result.returncode != 0


def test_background_servers_are_awaited_then_stopped(tmp_path: Path) -> None:
    serve = "python -m http.server 9100 --bind 127.0.0.1 2>/dev/null &  # on 127.0.0.1:9100"
    fetch = "python -c 'import urllib.request as u; u.urlopen(\"http://127.0.0.1:9100/\")'"
    page = page_of(tmp_path, f"{serve}\necho $! > server.pid", fetch)
    clone = make_clone(tmp_path)
    result = run_page(page, clone, home=False)
    assert result.returncode == 0, result.stderr
    pid = int((clone / "server.pid").read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def test_a_background_command_must_name_its_port(tmp_path: Path) -> None:
    page = page_of(tmp_path, "sleep 30 &")
    with pytest.raises(AssertionError, match="names no port"):
        script(page, {port: port for port in DOC_PORTS}, tmp_path)


def test_a_page_that_never_ends_is_cut_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys.modules[__name__], "PAGE_TIMEOUT", 1.0)
    with pytest.raises(AssertionError, match="still running"):
        run_page(page_of(tmp_path, "sleep 30"), make_clone(tmp_path), home=False)


def test_output_shown_must_be_printed(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("```sh\necho GET allow\n```\n\n<!-- output -->\n```text\nGET allow\n```\n")
    assert unprinted(page, "GET allow\n") == []
    assert unprinted(page, "GET deny scope.action\n") == ["GET allow"]

"""Which files a posture scan reads, and how: the tree walk and the bounded read.

A directory is walked without following symbolic links (a link is never read, so a
link out of the tree cannot make the scan read elsewhere) and without descending into
folders that hold other people's code or generated files (:data:`SKIPPED_DIRS`). A file
given by name is read even when a walk would have skipped it (its folder, its size
class), but never a binary one. What could not be read becomes a note in the report,
never a crash.
"""

from __future__ import annotations

import codecs
import errno
import os
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from zerolane.posture.findings import Note

#: the most of one file read, in bytes: larger files are not scanned (a note says so);
#: a CI file, a kubeconfig or a Terraform state of a real project stays far below it
MAX_BYTES = 4 * 1024 * 1024
#: the first bytes looked at for a NUL (a binary file: skipped, as detect-secrets does)
SNIFF = 8192
#: folders a walk does not descend into: version control, dependencies, caches, builds
SKIPPED_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        "node_modules",
        ".venv",
        "venv",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".tox",
        ".nox",
        ".terraform",
    }
)


@dataclass(frozen=True, slots=True)
class Source:
    """A file to scan: where it is, and how the report names it (relative to the root
    as given, ``/`` separated)."""

    path: Path
    shown: str


def walk(root: Path, notes: list[Note]) -> Iterator[Source]:
    """Every regular file under ``root`` (a folder), in a stable order, links not
    followed, :data:`SKIPPED_DIRS` left out. Folders that cannot be listed become
    ``notes``."""

    def failed(err: OSError) -> None:
        where = Path(err.filename) if err.filename else root
        notes.append(Note(_display(root, where), f"cannot list: {err.strerror or err}"))

    for folder, dirs, files in os.walk(root, onerror=failed, followlinks=False):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        base = Path(folder)
        for name in sorted(files):
            path = base / name
            yield Source(path, path.relative_to(root).as_posix())


def _display(root: Path, path: Path) -> str:
    return Path(os.path.relpath(path, root)).as_posix()


def sources(paths: list[Path], notes: list[Note]) -> Iterator[Source]:
    """The files of each path: a folder walked (:func:`walk`), a file as given. A
    walked file is named relative to its folder, with the folder as given before it when
    several paths are given (``src/app.py`` for ``scan src tests``). A path that does not
    exist raises ``FileNotFoundError``, checked for every path before any is read."""
    for path in paths:
        if not path.exists() and not path.is_symlink():
            raise FileNotFoundError(str(path))
    several = len(paths) > 1
    for path in paths:
        if path.is_dir() and not path.is_symlink():
            for source in walk(path, notes):
                shown = _join(path, source.shown) if several else source.shown
                yield Source(source.path, shown)
        else:
            yield Source(path, str(path))


def _join(root: Path, shown: str) -> str:
    """A walked file's name as the report shows it: relative to the current folder's
    view of ``root`` as given (``.`` adds nothing)."""
    prefix = root.as_posix()
    return shown if prefix in ("", ".") else f"{prefix.rstrip('/')}/{shown}"


def read_text(source: Source, notes: list[Note]) -> str | None:
    """The file's text (UTF-8, or UTF-16 after its byte order mark; undecodable bytes
    replaced), or ``None`` when it is not read: not a regular file, a link, binary,
    larger than :data:`MAX_BYTES` (a note), or unreadable (a note). Opened without
    following a link and without blocking (a FIFO given by name is refused, not waited
    on)."""
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(source.path, flags)
    except OSError as err:
        if err.errno == errno.ELOOP:  # O_NOFOLLOW refused a link
            notes.append(Note(source.shown, "a symbolic link: not followed"))
        else:
            notes.append(Note(source.shown, f"cannot read: {err.strerror or err}"))
        return None
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if not stat.S_ISREG(info.st_mode):
            notes.append(Note(source.shown, "not a regular file"))
            return None
        if info.st_size > MAX_BYTES:
            notes.append(Note(source.shown, f"larger than {MAX_BYTES} bytes: not scanned"))
            return None
        try:
            raw = file.read(MAX_BYTES + 1)
        except OSError as err:
            notes.append(Note(source.shown, f"cannot read: {err.strerror or err}"))
            return None
    if len(raw) > MAX_BYTES:  # grew while read
        notes.append(Note(source.shown, f"larger than {MAX_BYTES} bytes: not scanned"))
        return None
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        # Windows editors and PowerShell's '>' write UTF-16: NUL bytes, yet text
        return raw.decode("utf-16", errors="replace")
    if b"\0" in raw[:SNIFF]:
        return None
    # a UTF-8 byte order mark is no part of the first line (its key, a shebang)
    return raw.decode("utf-8-sig", errors="replace")

"""The default policy set shipped with zerolane, and a way to install it into a home."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from zerolane.errors import Conflict
from zerolane.policy.loader import POLICY_SUFFIX, SCHEMA_NAME

DEFAULT_POLICY_DIR = Path(__file__).resolve().parent / "default"
TESTS_DIR = "tests"
FILE_MODE = 0o644
DIR_MODE = 0o755


def default_files() -> list[Path]:
    """The schema, the ``*.cedar`` files and the policy test cases, relative to the folder."""
    base = DEFAULT_POLICY_DIR
    found = [base / SCHEMA_NAME, *sorted(base.glob(f"*{POLICY_SUFFIX}"))]
    found += sorted(p for p in (base / TESTS_DIR).glob("*") if p.suffix in {".yaml", ".json"})
    return [p.relative_to(base) for p in found]


def install_defaults(target: Path) -> list[Path]:
    """Copy the default policies into ``target``; refuse if any file is already there.

    Returns the files written. Folders it creates are 0755, files 0644.
    """
    files = default_files()
    existing = [str(target / f) for f in files if (target / f).exists()]
    if existing:
        raise Conflict("policy.exists", f"refusing to overwrite {', '.join(existing)}")
    written = []
    for relative in files:
        destination = target / relative
        if not destination.parent.is_dir():
            destination.parent.mkdir(mode=DIR_MODE, parents=True)
            os.chmod(destination.parent, DIR_MODE)
        shutil.copyfile(DEFAULT_POLICY_DIR / relative, destination)
        os.chmod(destination, FILE_MODE)
        written.append(destination)
    return written

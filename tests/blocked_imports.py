"""Run Python code in a child process where some modules cannot be imported, as on a
machine where the extra that brings them is not installed: a blocked name blocks its
submodules too (``zerolane.tasks`` blocks ``zerolane.tasks.decisions``)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterable

from zerolane.cli.extras import MODULES

#: every module an extra brings: what ``pip install zerolane`` alone does not install
EXTRAS_MODULES = frozenset().union(*MODULES.values())

#: the import hook: importing a blocked module is a ModuleNotFoundError, as when absent
HOOK = """
import sys
BLOCKED = frozenset({blocked!r})

class Absent:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Absent)
"""


def run_without(
    blocked: Iterable[str], code: str, *args: str, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` (after the hook) with ``args`` as ``sys.argv[1:]``."""
    hook = HOOK.format(blocked=sorted(blocked))
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    env.pop("ZEROLANE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", hook + code, *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )

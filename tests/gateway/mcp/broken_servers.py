"""Upstream configs whose command cannot start, and their twin that starts fine."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.gateway.mcp.harness import SAMPLE
from zerolane.gateway.mcp.config import UpstreamConfig

MISSING_MODULE = "zl_absent_module_for_tests"


def importing_missing_module(folder: Path) -> UpstreamConfig:
    """A Python server whose first import fails: it exits before initializing."""
    script = folder / "broken_server.py"
    script.write_text(f"import {MISSING_MODULE}\n")
    return UpstreamConfig(
        name="broken", destination="broken.example", command=sys.executable, args=(str(script),)
    )


def missing_executable(folder: Path) -> UpstreamConfig:
    return UpstreamConfig(
        name="absent", destination="absent.example", command=str(folder / "no-such-server")
    )


def sample() -> UpstreamConfig:
    return UpstreamConfig(
        name="tools", destination="tools.example", command=sys.executable, args=(str(SAMPLE),)
    )

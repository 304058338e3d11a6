"""Policy folders for tests: a private copy of the defaults, and tiny hand-made sets."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerolane.policy.cedar import CedarEngine
from zerolane.policy.defaults import DEFAULT_POLICY_DIR, install_defaults

TINY_SCHEMA = """
namespace Zerolane {
  entity Workload;
  entity Resource;
  entity Playbook;
  type Task = { state: String, level: Long };
  action "request" appliesTo {
    principal: [Workload], resource: [Resource], context: { now: Long, task: Task }
  };
}
"""
PERMIT = '@id("allow.all")\npermit (principal, action, resource);\n'


def write_set(folder: Path, files: dict[str, str], schema: str | None = TINY_SCHEMA) -> Path:
    """A policy folder with ``files`` (name -> text) and, unless None, ``schema``."""
    folder.mkdir(parents=True, exist_ok=True)
    if schema is not None:
        (folder / "schema.cedarschema").write_text(schema)
    for name, text in files.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture(scope="session")
def default_engine() -> CedarEngine:
    return CedarEngine(DEFAULT_POLICY_DIR)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """A writable copy of the default policy set."""
    folder = tmp_path / "policies"
    install_defaults(folder)
    return folder

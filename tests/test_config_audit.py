"""``[audit]``'s rates for the refusals audited before any decision (gateway.refused):
defaults, bounds with their reason id, and a file that renders and loads back."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerolane.config import CONFIG_NAME, AuditConfig, Config, load_config, render_config
from zerolane.errors import InvalidInput


def test_the_defaults() -> None:
    audit = AuditConfig()
    assert (audit.refusals_per_second, audit.refusals_burst) == (1.0, 20)
    assert audit.refusals_total_per_second == 50.0
    assert "refusals" not in render_config(Config(trust_domain="example.org"))


def test_rates_render_and_load_back(tmp_path: Path) -> None:
    audit = AuditConfig(refusals_per_second=0.5, refusals_burst=3, refusals_total_per_second=9)
    config = Config(trust_domain="example.org", audit=audit)
    (tmp_path / CONFIG_NAME).write_text(render_config(config))
    assert load_config(tmp_path).audit == audit


@pytest.mark.parametrize(
    "line", ["refusals_burst = 0", "refusals_per_second = 0", "refusals_total_per_second = -1"]
)
def test_a_rate_out_of_bounds_is_refused(tmp_path: Path, line: str) -> None:
    (tmp_path / CONFIG_NAME).write_text(f'trust_domain = "example.org"\n[audit]\n{line}\n')
    with pytest.raises(InvalidInput) as info:
        load_config(tmp_path)
    assert info.value.reason == "config.audit_refusals"
    assert line.split(" ")[0] in info.value.message

"""A static downstream secret is a finding naming where it is kept, never what it is."""

from __future__ import annotations

import pytest

from zerolane.posture.config_findings import StaticCredential, config_findings


def test_a_static_secret_in_a_file_is_found_by_its_path() -> None:
    (finding,) = config_findings(
        [StaticCredential("zerolane.toml", "[grants.static]", secret_file="/etc/zl/secret")]
    )
    assert finding.rule == "config.static_grant"
    assert finding.nhi == ("NHI7:2025", "NHI9:2025")
    assert finding.subject == "zerolane.toml [grants.static]"
    assert "kept in file /etc/zl/secret" in finding.message
    assert "docs/grants.md" in finding.remedy
    assert finding.details["secret_file"] == "/etc/zl/secret"
    assert finding.details["secret_env"] is None


def test_one_in_the_environment_is_also_a_leak_risk() -> None:
    (finding,) = config_findings(
        [StaticCredential("gw.toml", "upstreams[0] (billing).credential", secret_env="BILLING")]
    )
    assert finding.nhi == ("NHI2:2025", "NHI7:2025", "NHI9:2025")
    assert "kept in environment variable BILLING" in finding.message


def test_no_static_secret_no_finding() -> None:
    assert config_findings([]) == []


@pytest.mark.parametrize(
    ("secret_file", "secret_env"), [(None, None), ("/etc/zl/secret", "SECRET")]
)
def test_a_credential_is_kept_in_exactly_one_place(
    secret_file: str | None, secret_env: str | None
) -> None:
    with pytest.raises(ValueError, match="in a file or an environment variable"):
        StaticCredential("zerolane.toml", "[grants.static]", secret_file, secret_env)

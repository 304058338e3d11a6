"""A finding: masked values only, OWASP NHI ids checked against the framework table."""

from __future__ import annotations

import pytest

from zerolane.posture.findings import MASK, Finding, Severity, mask


def test_mask_keeps_a_prefix_of_long_values_only() -> None:
    assert mask("AKIA" + "Z" * 16) == "AKIA" + MASK
    assert mask("x" * 15) == MASK  # too short to show any of it
    assert mask("") == MASK
    # a value known only by its key (a password) shows nothing, however long
    assert mask("Winter2026Password!", shaped=False) == MASK


def _finding(nhi: tuple[str, ...]) -> Finding:
    return Finding("secret.file", "t", Severity.HIGH, nhi, "m", "r", path="a", line=3)


def test_a_finding_needs_known_nhi_ids() -> None:
    assert _finding(("NHI2:2025", "NHI7:2025")).nhi == ("NHI2:2025", "NHI7:2025")
    with pytest.raises(ValueError, match="NHI11"):
        _finding(("NHI11:2025",))
    with pytest.raises(ValueError, match="unknown OWASP NHI"):
        _finding(())


def test_files_sort_before_subjects() -> None:
    a = _finding(("NHI2:2025",))
    b = Finding("inventory.x", "t", Severity.LOW, ("NHI1:2025",), "m", "r", subject="s")
    assert sorted([b, a], key=Finding.sort_key) == [a, b]

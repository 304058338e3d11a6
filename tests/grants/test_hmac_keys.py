"""Per-task HMAC API keys: minted by the gateway, verified by upstreams."""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from tests.identity.attestors.cases import FixedClock
from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.grants import HmacKeys, mint_api_key, verify_api_key

KEY = bytes(range(32))
OTHER = bytes(range(1, 33))
TASK = "tsk_1Zl6J1PpCtv9m93lgI6f4Q"
NOW = 1_800_000_000


def test_a_minted_key_verifies_to_its_task() -> None:
    key = mint_api_key(KEY, TASK, NOW + 60)
    assert key.startswith(f"zlk_{TASK}.{NOW + 60}.")
    assert verify_api_key(KEY, key, NOW) == TASK
    assert verify_api_key(KEY, key, NOW + 59.9) == TASK


def test_an_expired_key_is_refused() -> None:
    key = mint_api_key(KEY, TASK, NOW + 60)
    for now in (NOW + 60, NOW + 3600):
        with pytest.raises(Unauthenticated) as caught:
            verify_api_key(KEY, key, now)
        assert caught.value.reason == "api_key.expired"


def test_a_key_minted_with_another_key_is_refused() -> None:
    with pytest.raises(Unauthenticated) as caught:
        verify_api_key(KEY, mint_api_key(OTHER, TASK, NOW + 60), NOW)
    assert caught.value.reason == "api_key.signature"


@pytest.mark.parametrize(
    "tamper",
    [
        lambda k: k.replace(TASK, "tsk_someoneelse00000000"),  # another task
        lambda k: k.replace(f".{NOW + 60}.", f".{NOW + 99999}."),  # a longer life
        lambda k: k[:-5] + ("A" if k[-5] != "A" else "B") + k[-4:],  # the signature
        lambda k: k[:-1] + {"A": "B", "B": "A"}.get(k[-1], "A"),  # its unused low bits
    ],
)
def test_a_tampered_key_is_refused(tamper: object) -> None:
    key = mint_api_key(KEY, TASK, NOW + 60)
    with pytest.raises(Unauthenticated) as caught:
        verify_api_key(KEY, tamper(key), NOW)  # type: ignore[operator]
    assert caught.value.reason == "api_key.signature"


@pytest.mark.parametrize(
    "presented",
    [
        "",
        "zlk_",
        f"{TASK}.{NOW}.sig",
        f"zlk_{TASK}.{NOW}",
        f"zlk_{TASK}.-5.{'A' * 43}",
        f"zlk_{TASK}.{NOW}.{'A' * 42}",
        f"zlk_{TASK}.{NOW}.{'A' * 42}=",
        f"zlk_{TASK}.{'9' * 13}.{'A' * 43}",
        f"zlk_tsk.bad.{NOW}.{'A' * 43}",
        f"zlk_{TASK}.{NOW}.{'A' * 43}.extra",
        f"zlk_{TASK}.{'١٢'}.{'A' * 43}",  # non-ASCII digits
    ],
)
def test_malformed_keys_are_refused(presented: str) -> None:
    with pytest.raises(Unauthenticated) as caught:
        verify_api_key(KEY, presented, NOW)
    assert caught.value.reason == "api_key.malformed"


def test_short_keys_and_bad_task_ids_are_refused() -> None:
    with pytest.raises(InvalidInput, match="at least 32 bytes"):
        mint_api_key(b"short", TASK, NOW)
    with pytest.raises(InvalidInput, match="at least 32 bytes"):
        verify_api_key(b"short", mint_api_key(KEY, TASK, NOW), NOW)
    for task in ("", "tsk.a", "tsk|a", "t" * 129):
        with pytest.raises(InvalidInput):
            mint_api_key(KEY, task, NOW)


def test_the_source_caps_the_key_at_its_ttl_and_the_task_expiry() -> None:
    clock = FixedClock(NOW)
    source = HmacKeys(KEY, header="X-Api-Key", ttl=300, clock=clock)
    name, value = source.header_for(TASK, NOW + 3600)
    assert name == "X-Api-Key"
    assert value.split(".")[1] == str(NOW + 300)
    assert source.header_for(TASK, NOW + 60.9)[1].split(".")[1] == str(NOW + 60)
    assert verify_api_key(KEY, value, NOW) == TASK
    assert "zlk" not in repr(source)
    assert KEY.hex() not in repr(source)


def test_the_source_renders_a_format() -> None:
    source = HmacKeys(KEY, header="Authorization", fmt="ApiKey {secret}", clock=FixedClock(NOW))
    name, value = source.header_for(TASK, NOW + 60)
    assert name == "Authorization"
    assert value.startswith(f"ApiKey zlk_{TASK}.")
    for fmt in ("none", "{secret}{secret}", "{secret} {other}"):
        with pytest.raises(InvalidInput, match="exactly once"):
            HmacKeys(KEY, fmt=fmt)
    with pytest.raises(InvalidInput, match="ttl"):
        HmacKeys(KEY, ttl=0)


def test_the_key_file_must_be_private(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "k"
    path.write_bytes(KEY + b"\n")
    path.chmod(0o600)
    source = HmacKeys.from_file(path, header="X-Api-Key", fmt="{secret}", ttl=60)
    value = source.header_for(TASK, 4_000_000_000)[1]
    assert verify_api_key(KEY, value, time.time()) == TASK
    path.chmod(0o640)
    with caplog.at_level(logging.DEBUG), pytest.raises(InvalidInput) as caught:
        HmacKeys.from_file(path, header="X-Api-Key", fmt="{secret}", ttl=60)
    assert caught.value.reason == "grant.file_mode"
    assert KEY.decode("latin-1") not in caplog.text

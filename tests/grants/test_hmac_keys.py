"""Per-task HMAC API keys: minted by the gateway, verified by upstreams."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.identity.attestors.cases import FixedClock
from zerolane.errors import InvalidInput, Unauthenticated
from zerolane.grants import HmacKeys, hmac_keys, mint_api_key, verify_api_key

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
    ids=["another_task", "longer_life", "signature", "unused_low_bits"],
)
def test_a_tampered_key_is_refused(tamper: Callable[[str], str]) -> None:
    key = mint_api_key(KEY, TASK, NOW + 60)
    with pytest.raises(Unauthenticated) as caught:
        verify_api_key(KEY, tamper(key), NOW)
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


@pytest.fixture
def mints(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every key the sources actually mint: (task id, exp)."""
    minted: list[tuple[str, int]] = []

    def counting(key: bytes, task_id: str, exp: int) -> str:
        minted.append((task_id, exp))
        return mint_api_key(key, task_id, exp)

    monkeypatch.setattr(hmac_keys, "mint_api_key", counting)
    return minted


def test_a_task_gets_the_key_minting_gives_now_minted_once_a_second(
    mints: list[tuple[str, int]],
) -> None:
    clock = FixedClock(NOW + 0.1)
    source = HmacKeys(KEY, ttl=300, clock=clock)
    values = {source.header_for(TASK, NOW + 3600)[1] for _ in range(50)}
    clock.t = NOW + 0.9
    values.add(source.header_for(TASK, NOW + 3600)[1])
    assert values == {mint_api_key(KEY, TASK, NOW + 300)}
    assert mints == [(TASK, NOW + 300)]
    clock.t = NOW + 1.0  # the next second: exp counts from it, a new key
    assert source.header_for(TASK, NOW + 3600)[1] == mint_api_key(KEY, TASK, NOW + 301)
    assert mints == [(TASK, NOW + 300), (TASK, NOW + 301)]


def test_a_kept_key_never_outlives_the_token_it_is_given_for(
    mints: list[tuple[str, int]],
) -> None:
    source = HmacKeys(KEY, ttl=300, clock=FixedClock(NOW))
    long = source.header_for(TASK, NOW + 3600)[1]
    short = source.header_for(TASK, NOW + 60.5)[1]  # the same task, a token ending sooner
    assert long.split(".")[1] == str(NOW + 300)
    assert short == mint_api_key(KEY, TASK, NOW + 60)
    with pytest.raises(Unauthenticated):
        verify_api_key(KEY, short, NOW + 60)


def test_a_key_ending_with_its_task_is_kept_until_then_and_never_after(
    mints: list[tuple[str, int]],
) -> None:
    clock = FixedClock(NOW)
    source = HmacKeys(KEY, ttl=300, clock=clock)
    ends = NOW + 10.7  # the task ends before now + ttl: every request's exp is its end
    first = source.header_for(TASK, ends)[1]
    clock.t = NOW + 9.99
    assert source.header_for(TASK, ends)[1] == first == mint_api_key(KEY, TASK, NOW + 10)
    assert len(mints) == 1
    for now in (NOW + 10, NOW + 10.5, NOW + 400):  # expired: minted each time, never kept
        clock.t = now
        value = source.header_for(TASK, ends)[1]
        with pytest.raises(Unauthenticated) as caught:
            verify_api_key(KEY, value, now)
        assert caught.value.reason == "api_key.expired"
    assert len(mints) == 4
    assert source.header_for(TASK, 0.0)[1] == mint_api_key(KEY, TASK, 0)  # exp unknown
    assert len(mints) == 5


def test_a_key_is_never_given_to_another_task_or_upstream(
    mints: list[tuple[str, int]],
) -> None:
    clock = FixedClock(NOW)
    finance = HmacKeys(KEY, ttl=300, clock=clock)
    wiki = HmacKeys(OTHER, ttl=300, clock=clock)
    other_task = "tsk_someoneelse0000000000"
    for _ in range(3):
        assert verify_api_key(KEY, finance.header_for(TASK, NOW + 3600)[1], NOW) == TASK
        assert verify_api_key(KEY, finance.header_for(other_task, NOW + 3600)[1], NOW) == (
            other_task
        )
        assert verify_api_key(OTHER, wiki.header_for(TASK, NOW + 3600)[1], NOW) == TASK
    assert finance.header_for(TASK, NOW + 3600) != wiki.header_for(TASK, NOW + 3600)
    # one each: finance's for either task, wiki's own for TASK
    assert sorted(mints) == sorted([(TASK, NOW + 300), (other_task, NOW + 300), (TASK, NOW + 300)])


def test_the_kept_keys_are_bounded(
    mints: list[tuple[str, int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hmac_keys, "KEPT_KEYS", 8)
    source = HmacKeys(KEY, ttl=300, clock=FixedClock(NOW))
    tasks = [f"tsk_{n}" for n in range(20)]
    for task in tasks:
        source.header_for(task, NOW + 3600)
    source.header_for(tasks[-1], NOW + 3600)  # recently used: still kept
    assert len(mints) == 20
    source.header_for(tasks[0], NOW + 3600)  # the least recently used went first
    assert len(mints) == 21
    assert source._kept.cache_info().currsize == 8

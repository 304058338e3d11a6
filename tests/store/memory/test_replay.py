"""The in-process replay cache: one-time ids, bounded, forgotten only after they expire."""

from __future__ import annotations

import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zerolane.store.memory.replay import MemoryReplayCache

NOW = 1_700_000_000.0


def test_an_id_is_new_once_and_other_ids_stay_new() -> None:
    cache = MemoryReplayCache()
    assert cache.first_use("jkt:a", NOW + 60, NOW)
    assert not cache.first_use("jkt:a", NOW + 60, NOW + 1)
    assert cache.first_use("jkt:b", NOW + 60, NOW)  # the twin: another id is new
    assert cache.first_use("other:a", NOW + 60, NOW)  # the same jti under another key
    assert len(cache) == 3


@given(st.floats(min_value=0.0, max_value=600.0), st.floats(min_value=0.0, max_value=1.0))
def test_an_id_is_never_forgotten_before_it_expires(ttl: float, fraction: float) -> None:
    cache = MemoryReplayCache()
    expires = NOW + ttl
    assert cache.first_use("jkt:a", expires, NOW) is (expires > NOW)
    assert not cache.first_use("jkt:a", expires, NOW + ttl * fraction * 0.999)


def test_an_id_is_forgotten_at_the_whole_second_after_it_expired() -> None:
    cache = MemoryReplayCache()
    assert cache.first_use("jkt:a", NOW + 60.2, NOW)
    assert not cache.first_use("jkt:a", NOW + 200, NOW + 60.5)  # rounded up: still known
    assert len(cache) == 1
    assert cache.first_use("jkt:z", NOW + 300, NOW + 61)  # any call evicts what expired
    assert len(cache) == 1
    assert cache.first_use("jkt:a", NOW + 300, NOW + 61)


def test_an_already_expired_id_is_refused() -> None:
    cache = MemoryReplayCache()
    assert not cache.first_use("jkt:a", NOW - 1, NOW)
    assert len(cache) == 0


def test_a_full_cache_refuses_until_ids_expire() -> None:
    cache = MemoryReplayCache(capacity=2)
    assert cache.first_use("jkt:a", NOW + 10, NOW)
    assert cache.first_use("jkt:b", NOW + 20, NOW)
    assert not cache.first_use("jkt:c", NOW + 20, NOW)  # full: fail closed
    assert cache.first_use("jkt:c", NOW + 30, NOW + 10)  # a expired: room again
    assert not cache.first_use("jkt:b", NOW + 30, NOW + 10)  # b is still remembered


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="capacity"):
        MemoryReplayCache(capacity=0)


def test_concurrent_first_uses_of_one_id_let_exactly_one_through() -> None:
    cache = MemoryReplayCache()
    start = threading.Barrier(16)
    wins: list[bool] = []

    def one() -> None:
        start.wait()
        wins.append(cache.first_use("jkt:race", NOW + 60, NOW))

    threads = [threading.Thread(target=one) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(wins) == [False] * 15 + [True]

"""Binding an HTTP request's body for approvals: the digest of what the forwarder will
send, read before the decision and replayed exactly; unbound when it cannot be held."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from typing import Any

import pytest

from zerolane.errors import InvalidInput
from zerolane.gateway.http.body_digest import EMPTY, BodyTimedOut, bind_body
from zerolane.gateway.http.forward import SMALL_BODY


def receiver(messages: Sequence[dict[str, Any]]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


def part(body: bytes, more: bool = False) -> dict[str, Any]:
    return {"type": "http.request", "body": body, "more_body": more}


def test_a_small_body_in_parts_is_hashed_and_replayed_whole() -> None:
    async def main() -> None:
        after = {"type": "http.disconnect"}
        bound = await bind_body(receiver([part(b"ab", True), part(b"c"), after]), 3, True, 10)
        assert bound is not None
        assert bound.digest == hashlib.sha256(b"abc").hexdigest()
        assert await bound.receive() == part(b"abc")  # what the forwarder reads
        assert await bound.receive() == after  # then the client's own messages

    asyncio.run(main())


def test_no_body_is_the_digest_of_no_bytes_and_a_big_or_chunked_one_is_unbound() -> None:
    async def main() -> None:
        receive = receiver([])
        none = await bind_body(receive, None, False, 10)
        assert none is not None
        assert (none.digest, none.receive) == (EMPTY, receive)
        for declared in (None, SMALL_BODY + 1):  # chunked, larger: streamed, not bound
            streamed = await bind_body(receive, declared, True, 10)
            assert streamed is not None
            assert (streamed.digest, streamed.receive) == (None, receive)

    asyncio.run(main())


def test_a_client_gone_mid_body_and_a_body_past_its_length() -> None:
    async def main() -> None:
        gone = receiver([part(b"a", True), {"type": "http.disconnect"}])
        assert await bind_body(gone, 3, True, 10) is None
        with pytest.raises(InvalidInput) as longer:
            await bind_body(receiver([part(b"abcd")]), 3, True, 10)
        assert longer.value.reason == "request.body_length"

    asyncio.run(main())


def test_a_body_slower_than_its_deadline_is_refused_and_a_prompt_one_is_read() -> None:
    async def main() -> None:
        sent = [part(b"ab", True)]  # then nothing: the rest of the body never comes

        async def slow() -> dict[str, Any]:
            if sent:
                return sent.pop(0)
            await asyncio.Event().wait()
            raise AssertionError("unreachable")

        with pytest.raises(BodyTimedOut) as late:
            await bind_body(slow, 3, True, 0.05)
        assert "0.05 s" in str(late.value)
        prompt = await bind_body(receiver([part(b"ab", True), part(b"c")]), 3, True, 0.05)
        assert prompt is not None
        assert prompt.digest == hashlib.sha256(b"abc").hexdigest()

    asyncio.run(main())

"""Oversized requests: does the target bound what it reads before deciding?

The allowed request, made right, is sent with one header of 64 KiB, with headers
summing to 1 MiB, and with a 64 MiB body (streamed from a generator with its
``Content-Length``: the probe never holds it). A sound target refuses each (413, 431,
400, or closes the connection without a success); one that accepts it reads, parses or
forwards whatever a client sends, which is a denial of service waiting to happen.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Sequence

from zerolane.probe.context import ProbeContext
from zerolane.probe.credentials import Credential
from zerolane.probe.model import Exchange, Result, Scenario
from zerolane.probe.runner import judge

KIB = 1024
MIB = 1024 * KIB
#: one header this long
ONE_HEADER = 64 * KIB
#: many headers summing to this much
ALL_HEADERS = MIB
#: each of the many headers' value
HEADER_VALUE = KIB
#: the body sent
BODY = 64 * MIB
#: the body's chunks
CHUNK = 64 * KIB
#: headers shown in the evidence of an attack with many
SHOWN_HEADERS = 8


def filler(total: int, chunk: int = CHUNK) -> Iterator[bytes]:
    """``total`` bytes of ``a`` in chunks of ``chunk`` (one buffer, yielded again)."""
    block = b"a" * chunk
    left = total
    while left > 0:
        yield block if left >= chunk else block[:left]
        left -= chunk


def _send(
    context: ProbeContext,
    credential: Credential,
    headers: dict[str, str],
    body: bytes | Iterator[bytes] | None = None,
) -> Exchange:
    """The allowed request, made right, with ``headers`` and ``body`` added."""
    call = context.profile.allowed
    url = context.profile.absolute(call.path)
    sent = [*call.headers, *context.authorization(credential, call.method, url).items()]
    sent += headers.items()
    return context.wire.send(
        "attack", call.method, url, headers=sent, body=call.body if body is None else body
    )


def _summarized(exchange: Exchange) -> Exchange:
    """The exchange with its request headers cut to the first few (a megabyte of
    padding says nothing more in a report)."""
    headers = exchange.request_headers
    if len(headers) <= SHOWN_HEADERS:
        return exchange
    kept = dict(list(headers.items())[:SHOWN_HEADERS])
    kept["..."] = f"{len(headers) - SHOWN_HEADERS} more headers"
    return dataclasses.replace(exchange, request_headers=kept)


def _headers(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    one = _send(context, credential, {"X-Probe-Padding": "a" * ONE_HEADER})
    count = ALL_HEADERS // (HEADER_VALUE + len("X-Probe-Padding-0000: \r\n"))
    many = _send(
        context,
        credential,
        {f"X-Probe-Padding-{i:04d}": "a" * HEADER_VALUE for i in range(count + 1)},
    )
    # a sound server may drop the connection on a head past its limits: a refusal
    attacks = [_summarized(one), _summarized(many)]
    return judge("limits.oversized_headers", twin, attacks, silence_refuses=True)


def _body(context: ProbeContext) -> Result:
    credential = context.credential()
    twin = context.twin(credential)
    headers = {"Content-Length": str(BODY), "Content-Type": "application/octet-stream"}
    attack = _send(context, credential, headers, filler(BODY))
    return judge("limits.oversized_body", twin, [attack], silence_refuses=True)


SCENARIOS: Sequence[Scenario] = (
    Scenario(
        id="limits.oversized_headers",
        title="Oversized headers",
        attack="Send the allowed request with one header of 64 KiB, then with headers "
        "summing to 1 MiB.",
        expect="Refused (431 or 400, or the connection closed): a request head is bounded "
        "before anything reads it.",
        surface="http",
        run=_headers,
    ),
    Scenario(
        id="limits.oversized_body",
        title="Oversized body",
        attack="Send the allowed request with a 64 MiB body (its Content-Length declared).",
        expect="Refused (413, or the connection closed): a body is bounded before it is "
        "read or forwarded.",
        surface="http",
        run=_body,
    ),
)

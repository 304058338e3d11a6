"""One case per attestor for the shared contract suite.

Each attestor folder adds a :class:`AttestorCase` factory to ``CASES``; every case must
pass ``test_attestor_contract.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from zerolane.identity.attestors.base import Attestor
from zerolane.identity.attestors.join_token import JoinTokenAttestor, new_join_token
from zerolane.store.memory import MemoryStores
from zerolane.types import Clock


@dataclass
class AttestorCase:
    attestor: Attestor
    #: fresh, valid evidence proving ``spiffe_id`` (or matching ``selectors``)
    good: Callable[[], object]
    #: valid-looking evidence that must be refused (tampered, wrong signer, expired ...)
    bad: list[object]
    spiffe_id: str | None
    #: whether the same evidence is refused on a second use
    single_use: bool


class FixedClock:
    def __init__(self, now: float = 1_800_000_000.0) -> None:
        self.t = now

    def now(self) -> float:
        return self.t


def join_token_case(clock: Clock) -> AttestorCase:
    stores = MemoryStores()
    spiffe_id = "spiffe://example.org/agent"

    def good() -> object:
        issued = new_join_token(spiffe_id, 600, clock)
        stores.add_join_token(issued.record)
        return issued.token

    unknown = new_join_token(spiffe_id, 600, clock).token  # never stored
    past = new_join_token(spiffe_id, 600, clock)  # stored with a window that has ended
    now = clock.now()
    stores.add_join_token(replace(past.record, created_at=now - 1200, expires_at=now - 600))
    return AttestorCase(
        attestor=JoinTokenAttestor(stores, clock),
        good=good,
        bad=[unknown, past.token, unknown.upper()],
        spiffe_id=spiffe_id,
        single_use=True,
    )


CASES: dict[str, Callable[[Clock], AttestorCase]] = {
    "join_token": join_token_case,
}

"""Detector cursors on every backend (see ``conftest.BACKENDS``): advanced compare-and-set,
all or none, in the write that appends the detections they found."""

from __future__ import annotations

import pytest

from tests.conformance.test_recorded_writes import chain_ok, event, failing_seal, kinds
from zerolane.audit.chain import seal
from zerolane.errors import Unavailable
from zerolane.store.changes import AdvanceCursors, CursorAdvance
from zerolane.store.ports import Stores
from zerolane.store.records import DetectorCursor


def advance(*steps: tuple[str, int, int]) -> AdvanceCursors:
    return AdvanceCursors(
        tuple(CursorAdvance(name, old, new, f'{{"at":{new}}}', 1.0) for name, old, new in steps)
    )


def found(ok: bool) -> list[dict[str, object]]:
    return [event("detection")] if ok else []


def test_a_new_detector_has_no_cursor(stores: Stores) -> None:
    assert stores.get_cursor("replay") is None
    assert stores.list_cursors() == []


def test_cursors_advance_together_with_their_detections(stores: Stores) -> None:
    assert stores.write_recorded(advance(("replay", 0, 5), ("fanout", 0, 5)), found, seal)
    assert stores.get_cursor("replay") == DetectorCursor("replay", 5, '{"at":5}', 1.0)
    assert [c.detector for c in stores.list_cursors()] == ["fanout", "replay"]
    assert kinds(stores) == ["detection"]
    assert stores.write_recorded(advance(("replay", 5, 9), ("fanout", 5, 9)), found, seal)
    assert [c.seq for c in stores.list_cursors()] == [9, 9]
    assert chain_ok(stores) == 2


def test_a_cursor_moved_elsewhere_writes_nothing_at_all(stores: Stores) -> None:
    stores.write_recorded(advance(("replay", 0, 5), ("fanout", 0, 5)), found, seal)
    # another runner moved them first: this one expected them at 0 (or one of them)
    assert not stores.write_recorded(advance(("replay", 0, 7)), found, seal)
    assert not stores.write_recorded(advance(("fanout", 5, 7), ("replay", 4, 7)), found, seal)
    assert [c.seq for c in stores.list_cursors()] == [5, 5]
    assert kinds(stores) == ["detection"]  # and no second detection
    # the twin: expected where they are
    assert stores.write_recorded(advance(("fanout", 5, 7), ("replay", 5, 7)), found, seal)
    assert [c.seq for c in stores.list_cursors()] == [7, 7]


def test_cursors_do_not_move_when_their_detections_cannot_be_recorded(stores: Stores) -> None:
    with pytest.raises(Unavailable):
        stores.write_recorded(advance(("replay", 0, 5)), found, failing_seal)
    assert stores.get_cursor("replay") is None
    assert kinds(stores) == []
    assert stores.write_recorded(advance(("replay", 0, 5)), found, seal)
    assert stores.get_cursor("replay") is not None

"""The playbook registry: admins apply playbooks; every apply is versioned and audited."""

from __future__ import annotations

from os import PathLike
from typing import Protocol

from zerolane.audit.chain import seal
from zerolane.audit.events import Actor
from zerolane.audit.log import AuditLog
from zerolane.errors import NotFound, ZerolaneError
from zerolane.store.changes import PutPlaybook
from zerolane.store.ports import PlaybookStore, RecordedWrites
from zerolane.store.records import PlaybookRecord
from zerolane.tasks.playbooks import (
    Playbook,
    load_playbook_file,
    playbook_from_json,
    playbook_to_json,
)
from zerolane.types import Clock, Outcome

EVENT = "playbook.applied"
MAX_SUBJECT = 256


class RecordedPlaybookStore(PlaybookStore, RecordedWrites, Protocol):
    """The playbook store, written to with each change's event."""


class PlaybookRegistry:
    """Stores playbooks as canonical JSON; applying one again makes a new version."""

    def __init__(self, store: RecordedPlaybookStore, audit: AuditLog, clock: Clock) -> None:
        self._store = store
        self._audit = audit
        self._clock = clock

    def apply(self, playbook: Playbook, actor: Actor) -> PlaybookRecord:
        """Validate and store ``playbook`` as version previous + 1 (or 1), audited.

        Re-applying a playbook identical to the stored one changes nothing: its version
        stays (tasks opened under it keep naming the version in force) and nothing is
        written. A refusal (an invalid playbook, a store failure) is audited as a
        failure with its reason, then raised.
        """
        try:
            # the round trip validates a Playbook built in code as strictly as a file
            checked = playbook_from_json(playbook_to_json(playbook), f"playbook {playbook.name!r}")
            previous = self._store.get_playbook(checked.name)
            if previous is not None and previous.document == playbook_to_json(checked):
                return previous
            record = PlaybookRecord(
                name=checked.name,
                document=playbook_to_json(checked),
                version=previous.version + 1 if previous else 1,
                updated_at=self._clock.now(),
            )
            applied = self._audit.event(
                EVENT,
                actor,
                record.name,
                Outcome.SUCCESS,
                details={
                    "name": record.name,
                    "version": record.version,
                    "ceiling": checked.data_ceiling.label,
                    "actions": list(checked.actions),
                },
            )
            # the new version and its event in one write: no unaudited rules in force
            self._store.write_recorded(PutPlaybook(record), lambda _: [applied.unsealed()], seal)
        except ZerolaneError as err:
            self._refused(str(playbook.name), err, actor)
            raise
        return record

    def apply_file(self, path: str | PathLike[str], actor: Actor) -> PlaybookRecord:
        """Load a playbook file and :meth:`apply` it; an invalid file is audited too."""
        try:
            playbook = load_playbook_file(path)
        except ZerolaneError as err:
            self._refused(str(path), err, actor)
            raise
        return self.apply(playbook, actor)

    def _refused(self, subject: str, err: ZerolaneError, actor: Actor) -> None:
        self._audit.record(
            EVENT,
            actor=actor,
            subject=subject[:MAX_SUBJECT],
            outcome=Outcome.FAILURE,
            reason=err.reason,
            details={"message": err.message[:1000]},
        )

    def record(self, name: str) -> PlaybookRecord:
        """The stored record of playbook ``name`` (raises ``NotFound``)."""
        record = self._store.get_playbook(name)
        if record is None:
            raise NotFound("playbook.unknown", f"no playbook {name!r} is registered")
        return record

    def get(self, name: str) -> Playbook:
        """The current version of playbook ``name`` (raises ``NotFound``)."""
        return playbook_from_json(self.record(name).document, f"stored playbook {name!r}")

    def list(self) -> list[tuple[Playbook, PlaybookRecord]]:
        """Every playbook with its record, ordered by name."""
        return [
            (playbook_from_json(r.document, f"stored playbook {r.name!r}"), r)
            for r in self._store.list_playbooks()
        ]

"""Scored leads and their score snapshots, written to the store in batches off the request path.

Writing each request's snapshot before answering costs the request a transaction (on SQLite a
disk sync, and a wait of up to its busy timeout while an import holds the writer's lock). The
service hands every scored batch to a `SnapshotWriter` instead: a bounded queue that one thread
drains, writing whatever has gathered in one transaction.

The promise: nothing is dropped to keep up. A request waits when the queue is full (and is
refused with `StoreBusyError` if it stays full for `wait_seconds`); a store that cannot be
reached is retried until it answers; `close()`, called when the service shuts down (SIGTERM),
writes everything queued before it returns. A SIGKILL, or a power loss, loses what was still
queued: the leads scored in the last `linger_seconds` plus one transaction's time, at most
`capacity` leads. With `capacity=0` there is no queue: each batch is written in the caller's
own transaction before `submit` returns, and a SIGKILL loses nothing that was answered.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from features.validation import LEAD_ID_KEY
from store import erasure, repository
from store.records import json_value, lead_row

log = logging.getLogger("leadloop.store")

#: Waits between attempts to reach a store that does not answer, growing to the last.
_RETRY_WAITS = (0.1, 0.2, 0.5, 1.0, 2.0, 5.0)


class StoreBusyError(RuntimeError):
    """The queue stayed full: the store is not keeping up with scoring."""


@dataclass(frozen=True)
class ScoredLead:
    """One lead as it was scored: what its snapshot keeps."""

    lead: Mapping[str, Any]
    probability: float
    score: int
    grade: str
    #: None when the caller asked for the score alone.
    reasons: list[dict[str, Any]] | None


@dataclass(frozen=True)
class ScoredBatch:
    """The leads of one request, scored by `model_version` at `scored_at`."""

    leads: list[ScoredLead]
    model_version: str
    scored_at: datetime


def write_batches(
    session: Session, schema: LeadSchema, pii_key: bytes, batches: list[ScoredBatch]
) -> None:
    """Store each scored lead and its snapshot in `session`'s transaction. A lead erased on
    request is scored (the caller asked) but nothing of it is stored again."""
    scored = [(batch, one) for batch in batches for one in batch.leads]
    erased = erasure.erased_ids(session, (one.lead[LEAD_ID_KEY] for _, one in scored), pii_key)
    kept = [(batch, one) for batch, one in scored if one.lead[LEAD_ID_KEY] not in erased]
    rows = [lead_row(schema, one.lead, pii_key, batch.scored_at) for batch, one in kept]
    repository.upsert_leads(session, rows, replace_attributes=False)
    repository.add_snapshots(session, [_snapshot_row(schema, b, one) for b, one in kept])


def _snapshot_row(schema: LeadSchema, batch: ScoredBatch, one: ScoredLead) -> dict[str, Any]:
    lead = one.lead
    return {
        "lead_id": lead[LEAD_ID_KEY],
        "scored_at": batch.scored_at,
        # Every field the schema lets a model see, not only those this model reads: the next
        # training run may use a field this one's guard left out.
        "features": {f.name: json_value(lead.get(f.name)) for f in schema.model_fields_in_order},
        "probability": one.probability,
        "score": one.score,
        "grade": one.grade,
        "reasons": one.reasons,
        "model_version": batch.model_version,
    }


class SnapshotWriter:
    """The queue between scoring and the store (see the module's docstring for its promise)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        schema: LeadSchema,
        pii_key: bytes,
        capacity: int,
        linger_seconds: float = 0.05,
        wait_seconds: float = 10.0,
    ) -> None:
        self._sessions, self._schema, self._pii_key = sessions, schema, pii_key
        self.capacity, self._linger, self._wait = capacity, linger_seconds, wait_seconds
        self._queued: deque[ScoredBatch] = deque()
        self._queued_leads = 0
        self._submitted = self._written = 0
        #: Leads that could not be stored at all (a row the store refuses), logged when it happens.
        self.lost = 0
        self._closing = False
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None
        if capacity:
            self._thread = threading.Thread(target=self._run, name="snapshot-writer", daemon=True)
            self._thread.start()

    @property
    def queued(self) -> int:
        """Leads scored and not yet stored."""
        return self._queued_leads

    def submit(self, batch: ScoredBatch) -> None:
        """Queue `batch` (or, without a queue, write it now); wait while the queue is full."""
        if self._thread is None:
            with self._sessions.begin() as session:
                write_batches(session, self._schema, self._pii_key, [batch])
            return
        size = len(batch.leads)
        with self._changed:
            # A batch larger than the whole queue goes in once the queue is empty.
            room = self._changed.wait_for(
                lambda: self._closing
                or self._queued_leads == 0
                or self._queued_leads + size <= self.capacity,
                timeout=self._wait,
            )
            if self._closing:
                raise StoreBusyError("the service is shutting down")
            if not room:
                raise StoreBusyError(
                    f"{self._queued_leads} scored leads are waiting for the store "
                    f"(at most {self.capacity} are queued)"
                )
            self._queued.append(batch)
            self._queued_leads += size
            self._submitted += 1
            self._changed.notify_all()

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is stored; False if `timeout` passed first.
        A read of the store that must see this process's scores (a lead read back, an outcome
        for a lead just scored, an erasure) flushes first."""
        with self._changed:
            target = self._submitted
            return self._changed.wait_for(lambda: self._written >= target, timeout=timeout)

    def close(self) -> None:
        """Store everything queued, then stop the thread."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._queued or self._closing)
                if not self._queued:
                    return  # closing, and nothing left
                # Let a few more requests join this transaction (closing cuts the wait short).
                self._changed.wait_for(lambda: self._closing, timeout=self._linger)
                batches = list(self._queued)
            self._store(batches)
            with self._changed:
                for _ in batches:
                    self._queued_leads -= len(self._queued.popleft().leads)
                self._written += len(batches)
                self._changed.notify_all()

    def _store(self, batches: list[ScoredBatch]) -> None:
        """Write `batches` in one transaction, retrying while the store cannot be reached (for
        at most `wait_seconds` once the service is closing). A batch the store refuses is
        written alone, so one bad row loses only its own request's scores."""
        give_up_at = None
        for attempt in itertools.count():
            try:
                with self._sessions.begin() as session:
                    write_batches(session, self._schema, self._pii_key, batches)
                return
            except OperationalError as exc:  # unreachable, locked, or a deadlock victim
                if self._closing and give_up_at is None:
                    give_up_at = time.monotonic() + self._wait
                if give_up_at is not None and time.monotonic() > give_up_at:
                    break
                wait = _RETRY_WAITS[min(attempt, len(_RETRY_WAITS) - 1)]
                log.warning("storing scores failed (%s); retrying in %.1f s", exc.orig, wait)
                time.sleep(wait)
            except SQLAlchemyError:
                if len(batches) > 1:
                    for batch in batches:
                        self._store([batch])
                    return
                break
        lead_ids = [one.lead[LEAD_ID_KEY] for batch in batches for one in batch.leads]
        self.lost += len(lead_ids)
        log.exception("the scores of %d leads could not be stored: %s", len(lead_ids), lead_ids)

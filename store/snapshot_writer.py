"""Scored leads and their score snapshots, written to the store in batches off the request path.

Writing each request's snapshot before answering costs the request a transaction: about a
millisecond of Python in SQLAlchemy, and on SQLite a wait of up to its busy timeout while an
import holds the writer's lock. Done by a thread of the service, the same work competes with
the requests for the interpreter's lock and puts milliseconds on their slowest answers. So the
service hands every scored batch to a `SnapshotWriter`: a bounded queue feeding a process of its
own, which writes whatever has gathered in one transaction and acknowledges it.

The promise: nothing is dropped to keep up. A request waits when the queue is full (and is
refused with `StoreBusyError` if it stays full for `wait_seconds`); a store that cannot be
reached is retried until it answers; `close()`, called when the service shuts down (SIGTERM),
returns once everything queued is stored. The writer process ignores signals and stops only
when the service closes its pipe, so a SIGKILL of the service loses nothing already handed
over: the writer stores it and exits. What a SIGKILL of both processes at once (a container
killed, a power loss) loses is what was queued: the leads scored in the last `linger_seconds`
plus one transaction's time, at most `capacity` leads. Should the writer process die, the
service logs it, stores what it had not confirmed itself (a batch stored just before the death
may then be stored twice) and writes each request's scores before answering from then on. With
`capacity=0` there is no queue and no process: each batch is written in the caller's own
transaction before `submit` returns.

Given webhook rules, the transaction that stores a score also writes the webhook it fires to
the outbox (`store.webhook_outbox`), for the service's dispatcher to send.
"""

from __future__ import annotations

import itertools
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from sqlalchemy.exc import OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from features.schema import LeadSchema
from features.validation import LEAD_ID_KEY
from store import erasure, repository, webhook_outbox
from store.db import make_engine, session_factory
from store.records import json_value, lead_row
from store.webhook_outbox import WebhookRules

log = logging.getLogger("leadloop.store")
#: The folder holding the `store` package: the writer process imports it from there.
_ROOT = Path(__file__).resolve().parents[1]

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
    session: Session,
    schema: LeadSchema,
    pii_key: bytes,
    batches: list[ScoredBatch],
    webhook_rules: WebhookRules | None = None,
) -> None:
    """Store each scored lead and its snapshot in `session`'s transaction, and with
    `webhook_rules` the webhooks the new scores fire. A lead erased on request is scored (the
    caller asked) but nothing of it is stored again."""
    scored = [(batch, one) for batch in batches for one in batch.leads]
    erased = erasure.erased_ids(session, (one.lead[LEAD_ID_KEY] for _, one in scored), pii_key)
    kept = [(batch, one) for batch, one in scored if one.lead[LEAD_ID_KEY] not in erased]
    rows = [lead_row(schema, one.lead, pii_key, batch.scored_at) for batch, one in kept]
    repository.upsert_leads(session, rows, replace_attributes=False)
    snapshots = [_snapshot_row(schema, b, one) for b, one in kept]
    if webhook_rules is None:  # no webhook configured: not a query more
        repository.add_snapshots(session, snapshots)
        return
    # The leads' scores before these, read before they are stored: one query per 500 leads.
    previous = webhook_outbox.latest_scores(session, (row["lead_id"] for row in snapshots))
    ids = repository.add_snapshots(session, snapshots, return_ids=True)
    stored = [row | {"id": id_} for row, id_ in zip(snapshots, ids, strict=True)]
    owed = webhook_outbox.owed_deliveries(webhook_rules, previous, stored)
    webhook_outbox.add_deliveries(session, owed)


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
        database_url: str,
        schema: LeadSchema,
        pii_key: bytes,
        capacity: int,
        linger_seconds: float = 0.05,
        wait_seconds: float = 10.0,
        webhook_rules: WebhookRules | None = None,
    ) -> None:
        self._url, self._schema, self._pii_key = database_url, schema, pii_key
        #: The webhooks a stored score may fire (None: no webhook configured).
        self._webhook_rules = webhook_rules
        self.capacity, self._linger, self._wait = capacity, linger_seconds, wait_seconds
        self._changed = threading.Condition()
        #: Numbered batches not yet sent to the writer process, and all not yet confirmed.
        self._outbox: deque[tuple[int, ScoredBatch]] = deque()
        self._unconfirmed: dict[int, ScoredBatch] = {}
        self._queued_leads = 0
        #: Batches numbered so far, and the number up to which every batch is stored.
        self._submitted = self._stored = 0
        #: Leads that could not be stored at all (a row the store refuses), logged when it happens.
        self.lost = 0
        self._closing = False
        #: Where batches are written in the caller's thread: without a queue, or once the writer
        #: process has died.
        self._here: sessionmaker[Session] | None = None
        self._threads: list[threading.Thread] = []
        self._process: subprocess.Popen[bytes] | None = None
        if capacity:
            self._start_process()
        else:
            self._here = session_factory(make_engine(database_url))

    @property
    def queued(self) -> int:
        """Leads scored and not yet stored."""
        return self._queued_leads

    def submit(self, batch: ScoredBatch) -> None:
        """Queue `batch` (or, without a queue, write it now); wait while the queue is full."""
        with self._changed:
            if self._here is None:
                room = self._changed.wait_for(
                    lambda: (
                        self._closing or self._here is not None or self._has_room(len(batch.leads))
                    ),
                    timeout=self._wait,
                )
                if self._closing:
                    raise StoreBusyError("the service is shutting down")
                if not room:
                    raise StoreBusyError(
                        f"{self._queued_leads} scored leads are waiting for the store "
                        f"(at most {self.capacity} are queued)"
                    )
                if self._here is None:
                    self._enqueue(batch)
                    return
        self._write_here([batch])

    def offer(self, batch: ScoredBatch) -> bool:
        """Queue `batch` if there is room now, never waiting; False if the caller must
        `submit` it instead (the queue is full, or there is none)."""
        with self._changed:
            if self._here is not None or self._closing or not self._has_room(len(batch.leads)):
                return False
            self._enqueue(batch)
        return True

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until everything submitted so far is stored; False if `timeout` (by default
        `wait_seconds`) passed first.
        A read of the store that must see this process's scores (a lead read back, an outcome
        for a lead just scored, an erasure) flushes first."""
        with self._changed:
            target = self._submitted
            return self._changed.wait_for(
                lambda: self._stored >= target, timeout=self._wait if timeout is None else timeout
            )

    def close(self) -> None:
        """Store everything queued, then stop the writer process. A store that stays out of
        reach is given `wait_seconds`, after which what is left is lost (and logged)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        if self._process is not None:
            self._stop_process()
        if self._here is not None:
            self._here.kw["bind"].dispose()

    def _stop_process(self) -> None:
        """Let the writer store what it holds; if the store keeps it waiting past
        `wait_seconds` (the sender blocked on a full pipe, or the writer retrying), kill it:
        what it held is then stored here, or counted lost, within another `wait_seconds`."""
        assert self._process is not None
        sender, confirmer = self._threads
        sender.join(timeout=self._wait)
        confirmer.join(timeout=0 if sender.is_alive() else self._wait)
        if sender.is_alive() or confirmer.is_alive():
            log.error("the snapshot writer did not finish within %g s: stopping it", self._wait)
            self._process.kill()
            sender.join()
            confirmer.join()

    def _has_room(self, size: int) -> bool:
        # A batch larger than the whole queue goes in once the queue is empty.
        return self._queued_leads == 0 or self._queued_leads + size <= self.capacity

    def _enqueue(self, batch: ScoredBatch) -> None:
        """Under the lock: number `batch`, queue it and wake the sender."""
        self._submitted += 1
        self._outbox.append((self._submitted, batch))
        self._unconfirmed[self._submitted] = batch
        self._queued_leads += len(batch.leads)
        self._changed.notify_all()

    def _start_process(self) -> None:
        # A command of its own, not multiprocessing: nothing of the service (its main module,
        # threads, event loop) is run again or copied into the writer.
        inbox, outbox = os.pipe()
        acks_in, acks_out = os.pipe()
        process = subprocess.Popen(
            [sys.executable, "-m", __name__, str(inbox), str(acks_out)],
            pass_fds=(inbox, acks_out),
            env=os.environ | {"PYTHONPATH": os.pathsep.join([str(_ROOT), *sys.path])},
        )
        os.close(inbox)  # the writer's ends: closed here, so each side sees the other go
        os.close(acks_out)
        self._process = process
        sending = Connection(outbox, readable=False)
        # The settings go through the pipe, not the command line: the PII key is among them.
        sending.send(
            (
                self._url,
                self._schema.model_dump(mode="json"),
                self._pii_key,
                self._linger,
                self._wait,
                self._webhook_rules,
            )
        )
        self._threads = [
            threading.Thread(target=self._send_forever, args=(sending,), daemon=True),
            threading.Thread(
                target=self._confirm_forever,
                args=(Connection(acks_in, writable=False), process),
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    def _send_forever(self, pipe: Connection) -> None:
        """Hand queued batches to the writer process; close its inbox once closing."""
        while True:
            with self._changed:
                self._changed.wait_for(
                    lambda: self._outbox or self._closing or self._here is not None
                )
                if not self._outbox:
                    break
                sending = list(self._outbox)
                self._outbox.clear()
            try:
                for item in sending:
                    pipe.send(item)
            except OSError:  # the writer process is gone: `_confirm_forever` takes over
                break
        pipe.close()

    def _confirm_forever(self, acks: Connection, process: subprocess.Popen[bytes]) -> None:
        """Count what the writer process confirms; if it ends before it was closed, store
        what it had not confirmed here, and every later batch too."""
        while True:
            try:
                last, lost = acks.recv()
            except EOFError:
                break
            with self._changed:
                while self._unconfirmed and next(iter(self._unconfirmed)) <= last:
                    self._queued_leads -= len(
                        self._unconfirmed.pop(next(iter(self._unconfirmed))).leads
                    )
                self._stored, self.lost = last, self.lost + lost
                self._changed.notify_all()
        process.wait()
        acks.close()
        with self._changed:
            if self._closing and not self._unconfirmed:
                return
            log.error(
                "the snapshot writer process ended (exit code %s) with %d scored leads not "
                "stored: storing them, and the scores from now on, in the service itself",
                process.returncode,
                self._queued_leads,
            )
            self._here = session_factory(make_engine(self._url))
            left = list(self._unconfirmed.values())
            self._outbox.clear()
            self._changed.notify_all()
        lost = len([one for batch in left for one in batch.leads])
        try:  # split and retried as the writer would; given up after `wait_seconds`
            lost = _Store(
                self._here, self._schema, self._pii_key, self._wait, self._webhook_rules
            ).write(left, True)
        finally:
            with self._changed:
                self._unconfirmed.clear()
                self._queued_leads = 0
                self._stored, self.lost = self._submitted, self.lost + lost
                self._changed.notify_all()

    def _write_here(self, batches: list[ScoredBatch]) -> None:
        assert self._here is not None
        try:
            with self._here.begin() as session:
                write_batches(session, self._schema, self._pii_key, batches, self._webhook_rules)
        except OperationalError as exc:  # locked past its timeout, or out of reach
            raise StoreBusyError(f"the store did not take the scores: {exc.orig}") from exc


#: Most batches one transaction of the writer process takes.
_MOST_BATCHES = 1_000


def _store_forever(inbox: Connection, acks: Connection) -> None:
    """The writer process: store what arrives, a transaction at a time, and confirm each, until
    the service closes the inbox (or dies: the same end of file)."""
    url, schema, pii_key, linger, wait, webhook_rules = inbox.recv()
    store = _Store(
        session_factory(make_engine(url)),
        LeadSchema.model_validate(schema),
        pii_key,
        wait,
        webhook_rules,
    )
    open_, confirming = True, True
    while open_:
        received, open_ = _gather(inbox, linger)
        if not received:
            continue
        lost = store.write([batch for _, batch in received], closing=not open_)
        if confirming:
            try:
                acks.send((received[-1][0], lost))
            except OSError:  # the service is gone: store the rest of the inbox all the same
                confirming = False
    acks.close()


def _gather(inbox: Connection, linger: float) -> tuple[list[tuple[int, ScoredBatch]], bool]:
    """The batches that arrive within `linger` seconds of the first (and any already waiting),
    and whether the inbox is still open."""
    received = []
    try:
        received.append(inbox.recv())
        deadline = time.monotonic() + linger
        while len(received) < _MOST_BATCHES and inbox.poll(max(0.0, deadline - time.monotonic())):
            received.append(inbox.recv())
    except EOFError:
        return received, False
    return received, True


@dataclass(frozen=True)
class _Store:
    sessions: sessionmaker[Session]
    schema: LeadSchema
    pii_key: bytes
    wait: float
    webhook_rules: WebhookRules | None = None

    def write(self, batches: list[ScoredBatch], closing: bool) -> int:
        """Write `batches` in one transaction, retrying while the store cannot be reached (for
        at most `wait` seconds once closing); the leads lost. A batch the store refuses is
        written alone, so one bad row loses only its own request's scores."""
        give_up_at = time.monotonic() + self.wait if closing else None
        for attempt in itertools.count():
            try:
                with self.sessions.begin() as session:
                    write_batches(session, self.schema, self.pii_key, batches, self.webhook_rules)
                return 0
            except OperationalError as exc:  # unreachable, locked, or a deadlock victim
                if give_up_at is not None and time.monotonic() > give_up_at:
                    break
                wait = _RETRY_WAITS[min(attempt, len(_RETRY_WAITS) - 1)]
                log.warning("storing scores failed (%s); retrying in %.1f s", exc.orig, wait)
                time.sleep(wait)
            except SQLAlchemyError:
                if len(batches) > 1:
                    return sum(self.write([batch], closing) for batch in batches)
                break
        lead_ids = [one.lead[LEAD_ID_KEY] for batch in batches for one in batch.leads]
        log.error("the scores of %d leads could not be stored: %s", len(lead_ids), lead_ids)
        return len(lead_ids)


if __name__ == "__main__":  # the writer process, started by `SnapshotWriter`
    # Signals are for the service: this process stops when its inbox is closed and empty.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    logging.basicConfig(format="%(levelname)s:     snapshot writer: %(message)s")
    _store_forever(
        Connection(int(sys.argv[1]), writable=False), Connection(int(sys.argv[2]), readable=False)
    )

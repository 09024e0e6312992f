"""The store's tables: leads, score snapshots, outcome events, the imports that wrote leads, the
API keys of the HTTP API and the outbox of webhooks owed to the CRM.

The same definitions run on SQLite (embedded default) and PostgreSQL; Alembic migrations in
`store/migrations` create them. Raw PII never gets a column: PII fields are kept only as keyed
hashes in `leads.pii_hashes`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from store.outcomes import Outcome

#: Explicit constraint names keep migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: leadloop stores aware UTC times")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


Id = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrements INTEGER keys only
Json = JSON()


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Lead(Base):
    __tablename__ = "leads"

    lead_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    source: Mapped[str | None] = mapped_column(String(200), index=True)
    lead_type: Mapped[str | None] = mapped_column(String(200))
    #: Non-PII field values as imported or last posted; the fallback training row.
    attributes: Mapped[dict[str, Any]] = mapped_column(Json)
    #: PII field name -> keyed HMAC of its normalised value.
    pii_hashes: Mapped[dict[str, str]] = mapped_column(Json)
    #: Keyed HMAC of the e-mail address's domain: leads of a company sales disqualified.
    email_domain_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ErasedLead(Base):
    """A lead erased on request: only a keyed hash of its id (HMAC with the PII key), so the
    store can refuse the lead when it comes back without keeping who it was."""

    __tablename__ = "erased_leads"

    lead_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ScoreSnapshot(Base):
    __tablename__ = "score_snapshots"
    __table_args__ = (Index(None, "lead_id", "scored_at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.lead_id", ondelete="CASCADE"))
    scored_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    #: The model inputs exactly as scored: what training joins back point in time.
    features: Mapped[dict[str, Any]] = mapped_column(Json)
    probability: Mapped[float] = mapped_column(Float)
    score: Mapped[int] = mapped_column(Integer)
    grade: Mapped[str] = mapped_column(String(1))
    #: None when the score was asked for without reasons.
    reasons: Mapped[list[dict[str, Any]] | None] = mapped_column(Json, nullable=True)
    model_version: Mapped[str] = mapped_column(String(100))


class OutcomeEvent(Base):
    __tablename__ = "outcome_events"
    __table_args__ = (
        CheckConstraint(
            "outcome IN (" + ", ".join(f"'{o}'" for o in Outcome) + ")",
            name="outcome_known",
        ),
        Index(None, "lead_id", "occurred_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(200), unique=True)
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.lead_id", ondelete="CASCADE"))
    outcome: Mapped[str] = mapped_column(String(20))
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime)
    amount: Mapped[float | None] = mapped_column(Numeric(14, 2, asdecimal=False))
    reason: Mapped[str | None] = mapped_column(String(500))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    #: The CRM's own order of its events, when it sends one: it breaks ties of `occurred_at`.
    crm_sequence: Mapped[int | None] = mapped_column(BigInteger)


class Import(Base):
    """One `leadloop import`: the file and the lead schema it was read with.

    Kept so that `leadloop train` can find the schema that describes the store's leads, and
    a later import can say which export the leads already stored came from. The schema's text
    is kept too: the file it was written to may be edited, moved or on another machine.
    """

    __tablename__ = "imports"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    imported_at: Mapped[datetime] = mapped_column(UTCDateTime)
    file_name: Mapped[str] = mapped_column(String(500))
    #: The schema file written (or reused) by the import, as an absolute path.
    schema_path: Mapped[str] = mapped_column(String(1000))
    schema_yaml: Mapped[str] = mapped_column(Text)
    n_leads: Mapped[int] = mapped_column(Integer)


class ApiKey(Base):
    """A key of the HTTP API: its name, its scopes and the SHA-256 of the key, never the key.

    A plain hash suffices (no salt, no slow KDF): the keys are 256 random bits, which no
    dictionary holds, and a fast hash lets every request find its key with one indexed lookup.
    """

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    #: Unique for good, revoked keys included: the name is how `leadloop keys` refers to a key.
    name: Mapped[str] = mapped_column(String(100), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookDelivery(Base):
    """A webhook owed to the CRM: written with the score that fired it, in the same transaction
    (the outbox), and sent by the service's dispatcher until delivered or given up."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'delivered', 'failed')", name="status_known"),
        Index(None, "status", "next_attempt_at"),
        Index(None, "lead_id", "id"),
        # A delivery's id is what receivers drop repeats by: SQLite must never hand out again
        # the id of a delivery erased with its lead (PostgreSQL's sequences never do).
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    event: Mapped[str] = mapped_column(String(30))
    #: The lead's erasure deletes its deliveries (sent or not) before the lead.
    lead_id: Mapped[str] = mapped_column(ForeignKey("leads.lead_id", ondelete="CASCADE"))
    #: The lead's score before and the one that fired the event (no foreign key: an erasure
    #: deletes the deliveries with the lead's other rows).
    old_snapshot_id: Mapped[int] = mapped_column(Id)
    new_snapshot_id: Mapped[int] = mapped_column(Id)
    #: What the body says but the delivery's id and the card link, made at each attempt.
    payload: Mapped[dict[str, Any]] = mapped_column(Json)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer)
    #: When the next attempt is due; null once delivered or given up.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: Set by the dispatcher that took the delivery, until when no other may take it.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    #: The receiver's HTTP status at the last attempt (null: no answer).
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    #: Why the last attempt failed, in a few words: never the receiver's body, nor the URL.
    last_error: Mapped[str | None] = mapped_column(String(200))
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

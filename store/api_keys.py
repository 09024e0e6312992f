"""API keys of the HTTP API: created, listed, revoked, and found again by their hash.

A key is shown once, when it is created; the store keeps only its SHA-256. Functions take an
open `Session`; the caller owns the transaction.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from store.tables import ApiKey

#: Marks a string as a leadloop key (in a config file, or a secret scanner's rules).
KEY_PREFIX = "ll_"
MAX_NAME_LENGTH = 100


class Scope(StrEnum):
    """What a key may do; `admin` may do everything."""

    SCORE = "score"
    INGEST = "ingest"
    READ = "read"
    ADMIN = "admin"


class ApiKeyError(ValueError):
    """A key cannot be created or revoked as asked (the message says why)."""


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid key belongs to, and what it may do."""

    name: str
    scopes: frozenset[Scope]

    def allows(self, scope: Scope) -> bool:
        return Scope.ADMIN in self.scopes or scope in self.scopes


@dataclass(frozen=True)
class ApiKeyInfo:
    """A key as `leadloop keys list` shows it: everything but the key and its hash."""

    name: str
    scopes: tuple[Scope, ...]
    created_at: datetime
    revoked_at: datetime | None


def hash_key(key: str) -> str:
    """The hex SHA-256 the store keeps in place of `key`."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def parse_scopes(values: Iterable[str]) -> tuple[Scope, ...]:
    """The scopes named in `values`, in their documented order; unknown names are refused."""
    names = set(values)
    unknown = sorted(names - set(Scope))
    if unknown:
        raise ApiKeyError(f"unknown scope {unknown[0]!r}: a scope is one of {', '.join(Scope)}")
    if not names:
        raise ApiKeyError(f"a key needs at least one scope: {', '.join(Scope)}")
    return tuple(scope for scope in Scope if scope in names)


def create_key(session: Session, name: str, scopes: Iterable[str], now: datetime) -> str:
    """Store a new key named `name` with `scopes`; return the key, which is never seen again."""
    _check_name(name)
    allowed = parse_scopes(scopes)
    if session.scalar(select(ApiKey.id).where(ApiKey.name == name)) is not None:
        raise ApiKeyError(f"a key named {name!r} exists already (names stay taken once revoked)")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    session.add(
        ApiKey(
            name=name,
            key_hash=hash_key(key),
            scopes=[str(scope) for scope in allowed],
            created_at=now,
            revoked_at=None,
        )
    )
    session.flush()
    return key


def list_keys(session: Session) -> list[ApiKeyInfo]:
    """Every key, revoked ones included, oldest first."""
    rows = session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id))
    return [
        ApiKeyInfo(row.name, parse_scopes(row.scopes), row.created_at, row.revoked_at)
        for row in rows
    ]


def revoke_key(session: Session, name: str, now: datetime) -> datetime:
    """Revoke the key named `name` from `now` on; return when it was revoked (a key revoked
    before keeps its first time)."""
    row = session.scalar(select(ApiKey).where(ApiKey.name == name))
    if row is None:
        raise ApiKeyError(f"no key named {name!r}: `leadloop keys list` shows them")
    if row.revoked_at is None:
        row.revoked_at = now
        session.flush()
    return row.revoked_at


def key_holder(session: Session, key_hash: str) -> KeyHolder | None:
    """Who holds the key with this hash, or None if no such key is stored or it is revoked."""
    row = session.execute(
        select(ApiKey.name, ApiKey.scopes).where(
            ApiKey.key_hash == key_hash, ApiKey.revoked_at.is_(None)
        )
    ).one_or_none()
    if row is None:
        return None
    return KeyHolder(row.name, frozenset(Scope(scope) for scope in row.scopes))


def _check_name(name: str) -> None:
    if not 0 < len(name) <= MAX_NAME_LENGTH or not name.isprintable() or name != name.strip():
        raise ApiKeyError(
            f"a key name is 1 to {MAX_NAME_LENGTH} printable characters, without spaces around"
        )

"""API keys in the store: shown once, kept only as a hash, found by it until revoked."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from store.api_keys import (
    KEY_PREFIX,
    ApiKeyError,
    KeyHolder,
    Scope,
    create_key,
    hash_key,
    key_holder,
    list_keys,
    revoke_key,
)

WHEN = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def test_a_key_is_stored_only_as_its_hash_and_found_by_it(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        key = create_key(session, "hubspot", ["ingest", "score", "score"], WHEN)
        other = create_key(session, "crm", ["read"], WHEN)
    assert key.startswith(KEY_PREFIX) and len(key) > 40 and key != other
    with sessions() as session:
        stored = " ".join(map(str, session.execute(text("SELECT * FROM api_keys")).all()))
        assert key not in stored and hash_key(key) in stored
        holder = key_holder(session, hash_key(key))
        assert holder == KeyHolder("hubspot", frozenset({Scope.SCORE, Scope.INGEST}))
        assert key_holder(session, hash_key(key + "x")) is None
        assert [(k.name, k.scopes, k.revoked_at) for k in list_keys(session)] == [
            ("hubspot", (Scope.SCORE, Scope.INGEST), None),
            ("crm", (Scope.READ,), None),
        ]


def test_admin_allows_every_scope_and_others_only_their_own() -> None:
    admin = KeyHolder("ops", frozenset({Scope.ADMIN}))
    reader = KeyHolder("bi", frozenset({Scope.READ}))
    assert all(admin.allows(scope) for scope in Scope)
    assert [scope for scope in Scope if reader.allows(scope)] == [Scope.READ]


def test_a_revoked_key_is_found_no_more_and_keeps_its_name(
    sessions: sessionmaker[Session],
) -> None:
    with sessions.begin() as session:
        key = create_key(session, "old", ["admin"], WHEN)
    later = WHEN + timedelta(days=1)
    with sessions.begin() as session:
        assert revoke_key(session, "old", later) == later
        assert revoke_key(session, "old", later + timedelta(days=1)) == later
    with sessions() as session:
        assert key_holder(session, hash_key(key)) is None
        assert [k.revoked_at for k in list_keys(session)] == [later]
        with pytest.raises(ApiKeyError, match="exists already"):
            create_key(session, "old", ["read"], later)


@pytest.mark.parametrize(
    ("name", "scopes", "says"),
    [
        ("a", ["write"], "unknown scope 'write'"),
        ("a", [], "at least one scope"),
        ("", ["read"], "1 to 100 printable"),
        ("tab\there", ["read"], "1 to 100 printable"),
        ("x" * 101, ["read"], "1 to 100 printable"),
    ],
)
def test_bad_names_and_scopes_are_refused(
    sessions: sessionmaker[Session], name: str, scopes: list[str], says: str
) -> None:
    with sessions() as session, pytest.raises(ApiKeyError, match=says):
        create_key(session, name, scopes, WHEN)
    with sessions() as session:
        assert list_keys(session) == []
        with pytest.raises(ApiKeyError, match="no key named 'nobody'"):
            revoke_key(session, "nobody", WHEN)

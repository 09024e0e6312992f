"""Free text keeps its meaning and loses the e-mail addresses and phone numbers in it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.pii import EMAIL_MASK, PHONE_MASK, scrub


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        (
            "called jane.doe+crm@acme.co.uk on +44 20 7946 0958, no budget",
            f"called {EMAIL_MASK} on {PHONE_MASK}, no budget",
        ),
        ("ring (555) 123-4567 after 5", f"ring {PHONE_MASK} after 5"),
        ("cell 0612345678.", f"cell {PHONE_MASK}."),
        ("lost on 2026-11-30 to a rival", "lost on 2026-11-30 to a rival"),
        ("meeting 30/11/2026 10:00", "meeting 30/11/2026 10:00"),
        ("budget 120000 for 12 seats", "budget 120000 for 12 seats"),
        ("order 1.250.000 or 1,250,000.50", "order 1.250.000 or 1,250,000.50"),
        ("no contact data here", "no contact data here"),
    ],
)
def test_scrub(text: str, scrubbed: str) -> None:
    assert scrub(text) == scrubbed


@given(
    user=st.from_regex(r"[a-z][a-z0-9._+-]{0,15}", fullmatch=True),
    domain=st.from_regex(r"[a-z][a-z0-9-]{0,10}\.[a-z]{2,6}", fullmatch=True),
    before=st.text(alphabet=st.characters(categories=["L", "Zs"]), max_size=20),
)
def test_no_email_address_survives(user: str, domain: str, before: str) -> None:
    address = f"{user}@{domain}"
    assert address not in scrub(f"{before} {address} thanks")

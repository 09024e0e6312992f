"""Short-lived signed links to a lead's card, so a CRM frame opens it without an API key.

A link names the lead, when it expires and an HMAC-SHA256 of both under the service's card key:
whoever holds the link sees that one lead's card until it expires, and nothing else. Changing
the lead id or the expiry breaks the signature; the key never leaves the server. The
presentation options (`lang`, `tz`) are not signed: they change how the card reads, not what
it shows.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote, urlencode, urlsplit

#: The query parameters of a card link.
EXPIRES, SIGNATURE = "expires", "signature"
#: Fewest bytes of key a link may be signed with: a short key can be guessed.
MIN_KEY_BYTES = 32
#: What a signature is for, so that no other use of the key signs a card link by accident.
_PURPOSE = b"leadloop card link\n"


class CardLinkRefused(PermissionError):
    """A card link that is expired, signed with another key, or altered."""


class BadCardLink(ValueError):
    """A link that cannot be made; `field` names what is wrong (`expires_in`, `lead_id`,
    `base_url`)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class CardLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class CardLinks:
    """Makes and checks card links under one secret key, each lasting at most `longest`
    seconds (a link that claims a later expiry is refused, so shortening the setting takes
    effect at once)."""

    key: bytes
    longest: int

    def __post_init__(self) -> None:
        if len(self.key) < MIN_KEY_BYTES:
            raise ValueError(
                f"the card key has {len(self.key)} bytes: card links need at least "
                f"{MIN_KEY_BYTES} (set LEADLOOP_CARD_KEY to a long random secret, or unset it "
                "to use the key in LEADLOOP_CARD_KEY_FILE)"
            )

    def link(self, base_url: str, lead_id: str, now: datetime, seconds: int | None) -> CardLink:
        """A link to `lead_id`'s card at `base_url`, valid `seconds` from `now` (default and
        most: `longest`)."""
        seconds = self.longest if seconds is None else seconds
        if seconds > self.longest:
            message = f"at most {self.longest} seconds (LEADLOOP_CARD_LINK_SECONDS)"
            raise BadCardLink("expires_in", message)
        if lead_id in (".", ".."):  # every client reads such a path segment as a step up
            raise BadCardLink("lead_id", f"a lead id {lead_id!r} cannot be in a link's path")
        expires = int(now.timestamp()) + seconds
        query = urlencode({EXPIRES: expires, SIGNATURE: self._signature(lead_id, expires)})
        url = f"{service_address(base_url)}{card_path(lead_id)}?{query}"
        return CardLink(url, datetime.fromtimestamp(expires, UTC))

    def check(
        self, lead_id: str, expires: str | None, signature: str | None, now: datetime
    ) -> None:
        """Raise `CardLinkRefused` unless the link was made by `link` and has not expired."""
        if expires is None or signature is None:
            raise CardLinkRefused(
                "the card opens with a signed link: `leadloop card-link` or "
                "POST /v1/leads/{id}/card-link makes one"
            )
        if not expires.isascii() or not expires.isdigit() or len(expires) > 12:
            raise CardLinkRefused("this card link is not valid: ask the CRM for a new one")
        expected = self._signature(lead_id, int(expires)).encode()
        # Bytes: compare_digest refuses str holding anything but ASCII, which a query may.
        if not hmac.compare_digest(signature.encode(), expected):
            raise CardLinkRefused("this card link is not valid: ask the CRM for a new one")
        left = int(expires) - now.timestamp()
        if left <= 0 or left > self.longest:
            raise CardLinkRefused("this card link has expired: reload the CRM page for a new one")

    def _signature(self, lead_id: str, expires: int) -> str:
        # The expiry first: digits hold no newline, so no other id and expiry sign alike.
        message = _PURPOSE + f"{expires}\n{lead_id}".encode()
        digest = hmac.new(self.key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def card_path(lead_id: str) -> str:
    """The card's path, the id quoted whole (its slashes too: a client would otherwise resolve
    an id's `.` and `..` segments before sending it)."""
    return f"/v1/leads/{quote(lead_id, safe='')}/card"


def service_address(base_url: str) -> str:
    """`base_url` without its trailing slash, if it can start a link: empty (a path alone), or
    http(s) with a host and neither query nor fragment. Raises `BadCardLink` otherwise."""
    if not base_url:
        return ""
    parts = urlsplit(base_url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise BadCardLink(
            "base_url",
            f"{base_url!r} cannot start a link: give the service's http(s) address, "
            "like https://leads.example.com",
        )
    return base_url.rstrip("/")

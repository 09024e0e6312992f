"""Personal data inside free text: e-mail addresses and phone numbers, masked before storage.

A sales rep types "called jane.doe@acme.com on +44 20 7946 0958, no budget" into a loss
reason; the reason is worth keeping, the address and the number are not. Dates, amounts and
short numbers stay: a phone number here is 7 to 15 digits (E.164's longest) in one run of
digits, spaces, dots, dashes, slashes and brackets, and neither a date nor an amount written
with thousands separators.
"""

from __future__ import annotations

import re

EMAIL_MASK = "[email]"
PHONE_MASK = "[phone]"

#: E-mail domains many people share: a lead disqualified there says nothing of the next one.
#: The best-known free-mail providers; `LEADLOOP_SHARED_EMAIL_DOMAINS` replaces the list.
SHARED_EMAIL_DOMAINS = (
    "gmail.com", "googlemail.com", "yahoo.com", "yahoo.co.uk", "yahoo.fr", "ymail.com",
    "hotmail.com", "hotmail.co.uk", "hotmail.fr", "outlook.com", "live.com", "msn.com",
    "aol.com", "icloud.com", "me.com", "mac.com", "proton.me", "protonmail.com", "gmx.com",
    "gmx.de", "gmx.net", "web.de", "t-online.de", "mail.com", "mail.ru", "yandex.ru",
    "yandex.com", "zoho.com", "qq.com", "163.com", "126.com", "rediffmail.com", "free.fr",
    "orange.fr", "laposte.net", "libero.it", "seznam.cz", "wp.pl", "naver.com", "fastmail.com",
)  # fmt: skip

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().\-/]{5,}\d(?![\w])")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
#: 1.250.000 or 1,250,000.50: an amount, not a number to call.
_AMOUNT = re.compile(r"\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*(?:[.,]\d{1,2})?")
_MIN_DIGITS, _MAX_DIGITS = 7, 15


def email_domain(value: object) -> str | None:
    """The domain of `value` if it is one e-mail address ("Jane@ACME.com " -> "acme.com"),
    else None: which PII field holds e-mail addresses is read from its values, not its name."""
    if not isinstance(value, str):
        return None
    text = value.strip()
    if not _EMAIL.fullmatch(text):
        return None
    return text.rsplit("@", 1)[1].casefold()


def scrub(text: str) -> str:
    """`text` with e-mail addresses and phone numbers replaced by masks."""
    return _PHONE.sub(_mask_phone, _EMAIL.sub(EMAIL_MASK, text))


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group()
    digits = sum(c.isdigit() for c in found)
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS or _DATE.search(found) or _AMOUNT.fullmatch(found):
        return found
    return PHONE_MASK

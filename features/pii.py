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

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_PHONE = re.compile(r"(?<![\w.])\+?\(?\d[\d\s().\-/]{5,}\d(?![\w])")
_DATE = re.compile(r"\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}")
#: 1.250.000 or 1,250,000.50: an amount, not a number to call.
_AMOUNT = re.compile(r"\d{1,3}(?:([.,])\d{3})(?:\1\d{3})*(?:[.,]\d{1,2})?")
_MIN_DIGITS, _MAX_DIGITS = 7, 15


def scrub(text: str) -> str:
    """`text` with e-mail addresses and phone numbers replaced by masks."""
    return _PHONE.sub(_mask_phone, _EMAIL.sub(EMAIL_MASK, text))


def _mask_phone(match: re.Match[str]) -> str:
    found = match.group()
    digits = sum(c.isdigit() for c in found)
    if not _MIN_DIGITS <= digits <= _MAX_DIGITS or _DATE.search(found) or _AMOUNT.fullmatch(found):
        return found
    return PHONE_MASK

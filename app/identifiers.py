"""What an identifier from outside may look like, before it goes near a query.

Our own ids (``pay_…``, ``evt_…``), provider references (UUIDs) and storefront order ids all fit
``[A-Za-z0-9_.:/#-]{1,64}``. Anything else (a NUL byte, which PostgreSQL text cannot even hold,
control characters, kilobytes of text) cannot name anything here, so it is treated as unknown.
"""

from __future__ import annotations

import re
from typing import TypeGuard

IDENTIFIER_PATTERN = r"^[A-Za-z0-9_.:/#-]{1,64}$"
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)


def is_identifier(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _IDENTIFIER.fullmatch(value) is not None


def identifier_or_none(value: object) -> str | None:
    return value if is_identifier(value) else None

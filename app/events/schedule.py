"""When to retry a storefront delivery: base * 4^(n-1), capped at 12 h, ±20 % jitter.

With the default 30 s base: 30 s, 2 min, 8 min, 32 min, ~2 h, ~8.5 h, then every 12 h; 12
attempts cover about three days.
"""

from __future__ import annotations

import random
from datetime import timedelta

MAX_DELAY = timedelta(hours=12)
JITTER = 0.2


def retry_delay(
    retry_number: int, base_seconds: float, *, rng: random.Random | None = None
) -> timedelta:
    """Delay before the ``retry_number``-th retry (1 = the first retry)."""
    exponent = min(max(retry_number - 1, 0), 20)  # 4**20 s is far past the cap already
    nominal = min(base_seconds * 4**exponent, MAX_DELAY.total_seconds())
    spread = (rng or random).uniform(1 - JITTER, 1 + JITTER)
    return timedelta(seconds=nominal * spread)

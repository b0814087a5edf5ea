"""Rate limits for the bridge: per identifier and per client address, in bounded memory."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict


class RateLimit:
    """At most ``per_minute`` hits per key in a fixed one-minute window.

    Memory is bounded: past ``max_keys`` keys the least recently hit is forgotten (an
    attacker spraying keys can only forget old windows, never raise a key's allowance
    within the window it is in, since a forgotten key is one not hit for the longest time).

    Example:
        >>> limit = RateLimit(2)
        >>> [limit.hit("a") is None for _ in range(3)]
        [True, True, False]
    """

    def __init__(self, per_minute: int, *, max_keys: int = 100_000, window: float = 60.0) -> None:
        self.per_minute = per_minute
        self.max_keys = max_keys
        self.window = window
        self._hits: OrderedDict[str, tuple[float, int]] = OrderedDict()
        self._lock = threading.Lock()

    def hit(self, key: str) -> float | None:
        """Count one hit; None when allowed, else the seconds until the window ends."""
        now = time.monotonic()
        with self._lock:
            start, count = self._hits.pop(key, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            count += 1
            self._hits[key] = (start, count)
            while len(self._hits) > self.max_keys:
                self._hits.popitem(last=False)
            if count > self.per_minute:
                return max(0.0, start + self.window - now)
            return None

    def __len__(self) -> int:
        return len(self._hits)

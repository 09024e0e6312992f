"""Valid API keys, remembered for a few seconds so that a request does not query the store."""

from __future__ import annotations

import time

from store.api_keys import KeyHolder


class KeyCache:
    """Valid keys' holders by key hash, each kept `seconds`: a request with a known key costs
    no query, and a revoked key is refused within `seconds`. Unknown keys are not kept (each
    costs a query; the rate limit and the connection cap bound how many)."""

    def __init__(self, seconds: float, max_keys: int = 10_000) -> None:
        self.seconds, self.max_keys = seconds, max_keys
        self._held: dict[str, tuple[KeyHolder, float]] = {}

    def get(self, key_hash: str) -> KeyHolder | None:
        held = self._held.get(key_hash)
        if held is None or time.monotonic() - held[1] > self.seconds:
            return None
        return held[0]

    def put(self, key_hash: str, holder: KeyHolder) -> None:
        if self.seconds <= 0:
            return
        if len(self._held) >= self.max_keys:
            self._held.clear()  # many keys at once: start over rather than grow
        self._held[key_hash] = (holder, time.monotonic())

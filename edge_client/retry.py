"""When to try an event again, and when to give up on it (pure: no I/O, Python 3.8).

Two kinds of waiting:
- **The portal is away** (no connection, token refused, portal busy or throttling): nothing can
  be delivered, so the sender waits as a whole — exponential backoff with jitter, capped at
  ``portal_cap`` seconds — and no event is blamed for it.
- **The portal answered, but this event failed** (a 5xx for it, or the connection dropped on it
  while the portal still answers heartbeats): the event is retried after its own exponential
  backoff with jitter (capped at ``event_cap``) and the events behind it keep flowing. Once it has
  failed ``max_tries`` times *and* is older than ``max_age`` seconds it goes to the dead-letter
  table. An event the portal refuses for good (a 4xx other than 401/403/408/429) goes there at once.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Optional


@dataclass(frozen=True)
class RetryPolicy:
    base: float = 2.0  # seconds before the first retry of a failed event (then doubling)
    event_cap: float = 300.0  # the longest wait between two tries of one event
    portal_cap: float = 15.0  # the longest wait while the portal is away
    max_tries: int = 10  # failures before an event may be dead-lettered ...
    max_age: float = 3600.0  # ... and it must also be at least this old (seconds since it was queued)

    def event_delay(self, failures: int, rng: Optional[random.Random] = None) -> float:
        """Seconds before the next try after ``failures`` failures: exponential, "equal jitter"
        (half fixed, half random), so doors that failed together do not retry together."""
        return _jittered(self.base, self.event_cap, failures, rng)

    def portal_delay(self, outages: int, rng: Optional[random.Random] = None) -> float:
        """Seconds to wait after ``outages`` failed attempts in a row to reach the portal."""
        return _jittered(1.0, self.portal_cap, outages, rng)

    def give_up(self, failures: int, age: float) -> bool:
        return failures >= self.max_tries and age >= self.max_age


def _jittered(base: float, cap: float, attempt: int, rng: Optional[random.Random]) -> float:
    ceiling = min(cap, base * (2 ** max(0, min(attempt, 62) - 1)))
    return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)

"""The on-disk queue (SQLite): every captured event is written here before any attempt to send
it, and leaves only when the portal has answered. Events are delivered oldest first, one at a
time; each carries an idempotency key, so a resend after a lost answer is stored once by the
portal — exactly once overall, across portal outages and client restarts."""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    body TEXT NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    delivered_at REAL,
    answer TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (delivered_at, seq);
"""


@dataclass
class Item:
    seq: int
    key: str
    kind: str
    captured_at: str
    body: dict[str, Any]
    queued_at: float
    attempts: int


class Outbox:
    def __init__(self, path: str, keep_delivered: int = 500) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self.keep_delivered = path, keep_delivered
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a queued event survives a power cut
        self._db.executescript(SCHEMA)
        self._lock = threading.Lock()
        self.changed = threading.Condition()

    def put(self, *, key: str, kind: str, captured_at: str, body: dict[str, Any]) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (key, kind, captured_at, body, queued_at) VALUES (?, ?, ?, ?, ?)",
                (key, kind, captured_at, json.dumps(body), time.time()))
            seq = cursor.lastrowid
        with self.changed:
            self.changed.notify_all()
        return seq

    def head(self) -> Item | None:
        """The oldest event not yet answered."""
        with self._lock:
            row = self._db.execute(
                "SELECT seq, key, kind, captured_at, body, queued_at, attempts FROM outbox "
                "WHERE delivered_at IS NULL ORDER BY seq LIMIT 1").fetchone()
        if row is None:
            return None
        return Item(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6])

    def attempt_failed(self, seq: int, error: str) -> None:
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?", (error[:500], seq))

    def delivered(self, seq: int, answer: dict[str, Any]) -> None:
        """The portal answered: keep the answer (for the log) and drop the frames."""
        with self._lock:
            self._db.execute("UPDATE outbox SET delivered_at = ?, answer = ?, body = '{}', attempts = attempts + 1 "
                             "WHERE seq = ?", (time.time(), json.dumps(answer), seq))
            self._db.execute("DELETE FROM outbox WHERE delivered_at IS NOT NULL AND seq <= "
                             "(SELECT MAX(seq) FROM outbox) - ?", (self.keep_delivered,))
        with self.changed:
            self.changed.notify_all()

    def pending(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE delivered_at IS NULL").fetchone()[0]

    def wait(self, timeout: float) -> None:
        """Sleep until something is queued or delivered, or ``timeout``."""
        with self.changed:
            self.changed.wait(timeout)

    def close(self) -> None:
        with self._lock:
            self._db.close()

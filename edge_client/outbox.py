"""The on-disk queue (SQLite): every captured event is written here before any attempt to send
it, and leaves only when the portal has answered. Events are delivered oldest first, one at a
time; each carries an idempotency key, so a resend after a lost answer is stored once by the
portal — exactly once overall, across portal outages and client restarts.

An event that fails is retried after its own backoff (``next_attempt_at``) while the ones behind
it keep flowing; one the portal refuses for good, or that keeps failing past the bounds of
``edge_client.retry``, moves to the ``dead_letter`` table of the same file. ``python -m
edge_client status`` lists dead letters and ``python -m edge_client replay`` puts them back in
the queue (under the same key, so an event the portal did store is still stored once).
"""

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
CREATE TABLE IF NOT EXISTS dead_letter (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    captured_at TEXT NOT NULL,
    body TEXT NOT NULL,
    queued_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    code TEXT NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL
);
"""
# Columns added after the first release (an existing queue file gains them on open).
ADDED_COLUMNS = {
    "failures": "INTEGER NOT NULL DEFAULT 0",  # failures the event itself is blamed for
    "next_attempt_at": "REAL NOT NULL DEFAULT 0",  # unix time; 0 = now
}


@dataclass
class Item:
    seq: int
    key: str
    kind: str
    captured_at: str
    body: dict[str, Any]
    queued_at: float
    attempts: int
    failures: int = 0


@dataclass
class DeadLetter:
    id: int
    key: str
    kind: str
    captured_at: str
    queued_at: float
    attempts: int
    code: str
    reason: str
    dead_at: float

    def public(self) -> dict[str, Any]:
        return {"id": self.id, "key": self.key, "kind": self.kind, "captured_at": self.captured_at,
                "attempts": self.attempts, "code": self.code, "reason": self.reason,
                "dead_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.dead_at))}


class Outbox:
    def __init__(self, path: str, keep_delivered: int = 500, max_retry_ahead: float = 900.0) -> None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path, self.keep_delivered = path, keep_delivered
        # No retry waits longer than this (the client sets it from its retry bounds): a next try
        # further ahead was scheduled by a clock that has since been stepped back.
        self.max_retry_ahead = max_retry_ahead
        self.set_aside: str | None = None
        try:
            self._db = self._open(path)
        except sqlite3.OperationalError:
            raise  # "database is locked" and the like: a healthy queue someone else holds, never set aside
        except sqlite3.DatabaseError:
            # Storage corruption ("file is not a database", "disk image is malformed"; not a killed
            # write: WAL survives those): keep the file for a person to look at and start a fresh
            # queue, so the door works again.
            stamp = int(time.time())
            while Path(f"{path}.corrupt-{stamp}").exists():
                stamp += 1  # never over an earlier set-aside copy
            self.set_aside = f"{path}.corrupt-{stamp}"
            for suffix in ("", "-wal", "-shm"):
                if Path(path + suffix).exists():
                    Path(path + suffix).rename(self.set_aside + suffix)
            self._db = self._open(path)
        self._lock = threading.Lock()
        self.changed = threading.Condition()

    @staticmethod
    def _open(path: str) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")  # a queued event survives a power cut
            db.executescript(SCHEMA)
            columns = {row[1] for row in db.execute("PRAGMA table_info(outbox)")}
            for name, declaration in ADDED_COLUMNS.items():
                if name not in columns:
                    db.execute(f"ALTER TABLE outbox ADD COLUMN {name} {declaration}")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def put(self, *, key: str, kind: str, captured_at: str, body: dict[str, Any]) -> int:
        with self._lock:
            cursor = self._db.execute(
                "INSERT INTO outbox (key, kind, captured_at, body, queued_at) VALUES (?, ?, ?, ?, ?)",
                (key, kind, captured_at, json.dumps(body), time.time()))
            seq = cursor.lastrowid
        with self.changed:
            self.changed.notify_all()
        return seq

    def head(self, now: float | None = None) -> Item | None:
        """The oldest event not yet answered whose next try is due. A next try further ahead than
        any retry waits (``max_retry_ahead``) was set by a clock since stepped back: due now."""
        now = time.time() if now is None else now
        with self._lock:
            row = self._db.execute(
                "SELECT seq, key, kind, captured_at, body, queued_at, attempts, failures FROM outbox "
                "WHERE delivered_at IS NULL AND (next_attempt_at <= ? OR next_attempt_at > ?) ORDER BY seq LIMIT 1",
                (now, now + self.max_retry_ahead)).fetchone()
        if row is None:
            return None
        return Item(row[0], row[1], row[2], row[3], json.loads(row[4]), row[5], row[6], row[7])

    def due_in(self) -> float | None:
        """Seconds until the next pending event is due (0 if one is due now), None if none is pending."""
        now = time.time()
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(CASE WHEN next_attempt_at > ? THEN ? ELSE next_attempt_at END) FROM outbox "
                "WHERE delivered_at IS NULL", (now + self.max_retry_ahead, now)).fetchone()
        return None if row[0] is None else max(0.0, row[0] - now)

    def attempt_failed(self, seq: int, error: str) -> None:
        """A try that reached no portal: counted as an attempt, not held against the event."""
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE seq = ?", (error[:500], seq))

    def retry_later(self, seq: int, error: str, *, at: float) -> None:
        """The event itself failed: one more failure, next try at ``at`` (unix time)."""
        with self._lock:
            self._db.execute("UPDATE outbox SET attempts = attempts + 1, failures = failures + 1, last_error = ?, "
                             "next_attempt_at = ? WHERE seq = ?", (error[:500], at, seq))

    def dead_letter(self, seq: int, code: str, reason: str) -> None:
        """Move an event out of the queue into the dead-letter table (one transaction)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.execute(
                    "INSERT OR REPLACE INTO dead_letter (key, kind, captured_at, body, queued_at, attempts, code, reason, "
                    "dead_at) SELECT key, kind, captured_at, body, queued_at, attempts + 1, ?, ?, ? FROM outbox "
                    "WHERE seq = ?", (code[:100], reason[:500], time.time(), seq))
                self._db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        with self.changed:
            self.changed.notify_all()

    def dead_letters(self, limit: int | None = None) -> list[DeadLetter]:
        """Dead letters, newest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, key, kind, captured_at, queued_at, attempts, code, reason, dead_at FROM dead_letter "
                "ORDER BY id DESC LIMIT ?", (-1 if limit is None else limit,)).fetchall()
        return [DeadLetter(*row) for row in rows]

    def dead_letter_count(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM dead_letter").fetchone()[0]

    def dead_letter_state(self) -> tuple[int, int]:
        """(count, newest id): changes whenever a letter is added or replayed, in any process."""
        with self._lock:
            row = self._db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM dead_letter").fetchone()
        return row[0], row[1]

    def replay(self, ids: list[int] | None = None) -> list[DeadLetter]:
        """Put dead letters (``ids``, or all) back at the end of the queue, due now, with a fresh
        count of failures; each keeps its idempotency key. Returns the letters replayed."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                query = ("SELECT id, key, kind, captured_at, queued_at, attempts, code, reason, dead_at FROM dead_letter"
                         + ("" if ids is None else f" WHERE id IN ({','.join('?' * len(ids))})") + " ORDER BY id")
                letters = [DeadLetter(*row) for row in self._db.execute(query, [] if ids is None else ids).fetchall()]
                for letter in letters:
                    self._db.execute("DELETE FROM outbox WHERE key = ?", (letter.key,))
                    self._db.execute(
                        "INSERT INTO outbox (key, kind, captured_at, body, queued_at, attempts) "
                        "SELECT key, kind, captured_at, body, ?, attempts FROM dead_letter WHERE id = ?",
                        (time.time(), letter.id))
                    self._db.execute("DELETE FROM dead_letter WHERE id = ?", (letter.id,))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        with self.changed:
            self.changed.notify_all()
        return letters

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

"""The workspace's own records (SQLite): users, their cases and every sign-off decision.

A case belongs to the clinician who opened it and has its own consult thread, so two clinicians on the same patient
never share a draft. URLs and logs carry only the case's random id, never a name or an MRN.
"""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from medconsult.cases import Case

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    created TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL REFERENCES users(name),
    title TEXT NOT NULL,
    case_json TEXT NOT NULL,
    thread_id TEXT NOT NULL,
    out_dir TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_by_owner ON cases(owner, created);
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    case_id TEXT NOT NULL REFERENCES cases(id),
    user TEXT NOT NULL,
    at TEXT NOT NULL,
    decision TEXT NOT NULL,
    note TEXT
);
"""

# A case's life: queued (waiting for a free consult slot), running, awaiting sign-off, then signed or failed.
# "paused": a service, the checkpoint database or the folder failed; the case resumes from its checkpoint.
STATUSES = ("queued", "running", "paused", "awaiting sign-off", "signing", "signed", "failed")


@dataclass(frozen=True)
class WorkspaceCase:
    id: str
    owner: str
    title: str
    case: Case
    thread_id: str
    out_dir: Path
    status: str
    detail: str | None
    created: str
    updated: str


@dataclass(frozen=True)
class Decision:
    user: str
    at: str
    decision: str
    note: str | None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class WorkspaceStore:
    def __init__(self, path: Path):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        connection = sqlite3.connect(self.path, timeout=10)
        connection.row_factory = sqlite3.Row
        try:
            with connection:  # commits, or rolls back on an error
                yield connection
        finally:
            connection.close()

    # ---- users --------------------------------------------------------------------------------------------
    def add_user(self, name: str, password_hash: str) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO users (name, password_hash, created) VALUES (?, ?, ?) "
                "ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash",
                (name, password_hash, now()),
            )

    def password_hash(self, name: str) -> str | None:
        with self._connect() as db:
            row = db.execute("SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        return row["password_hash"] if row else None

    def user_exists(self, name: str) -> bool:
        return self.password_hash(name) is not None

    def user_count(self) -> int:
        with self._connect() as db:
            return db.execute("SELECT COUNT(*) FROM users").fetchone()[0]

    # ---- cases --------------------------------------------------------------------------------------------
    def add_case(self, owner: str, title: str, case: Case, out_root: Path) -> WorkspaceCase:
        case_id = secrets.token_urlsafe(9)
        thread_id = f"ws-{case_id}"
        stamp = now()
        with self._connect() as db:
            db.execute(
                "INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, 'queued', NULL, ?, ?)",
                (
                    case_id,
                    owner,
                    title,
                    case.model_dump_json(),
                    thread_id,
                    str(out_root / case_id),
                    stamp,
                    stamp,
                ),
            )
        found = self.case(case_id, owner)
        assert found is not None
        return found

    def case(self, case_id: str, owner: str) -> WorkspaceCase | None:
        """The case, only for its owner: another user's id reads as absent."""
        with self._connect() as db:
            row = db.execute("SELECT * FROM cases WHERE id = ? AND owner = ?", (case_id, owner)).fetchone()
        return _case(row) if row else None

    def cases(self, owner: str) -> list[WorkspaceCase]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM cases WHERE owner = ? ORDER BY created DESC", (owner,)
            ).fetchall()
        return [_case(row) for row in rows]

    def unfinished(self) -> list[WorkspaceCase]:
        """Cases a stopped server left queued or running (its restart resumes them from their checkpoints)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT * FROM cases WHERE status IN ('queued', 'running', 'signing')"
            ).fetchall()
        return [_case(row) for row in rows]

    def set_status(self, case_id: str, status: str, detail: str | None = None) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        with self._connect() as db:
            db.execute(
                "UPDATE cases SET status = ?, detail = ?, updated = ? WHERE id = ?",
                (status, detail, now(), case_id),
            )

    # ---- decisions ----------------------------------------------------------------------------------------
    def record_decision(self, case_id: str, user: str, decision: str, note: str | None) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT INTO decisions (case_id, user, at, decision, note) VALUES (?, ?, ?, ?, ?)",
                (case_id, user, now(), decision, note),
            )

    def decisions(self, case_id: str) -> list[Decision]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT user, at, decision, note FROM decisions WHERE case_id = ? ORDER BY id", (case_id,)
            ).fetchall()
        return [Decision(**dict(row)) for row in rows]


def _case(row: sqlite3.Row) -> WorkspaceCase:
    values = dict(row)
    return WorkspaceCase(
        **{k: v for k, v in values.items() if k not in ("case_json", "out_dir")},
        case=Case.model_validate_json(values["case_json"]),
        out_dir=Path(values["out_dir"]),
    )

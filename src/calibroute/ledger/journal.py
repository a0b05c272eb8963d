"""The ledger's local journal: a row is on disk before the response that it records is sent.

Why: the writer thread commits rows in batches, tens of milliseconds after a response is
sent, so a process that dies (SIGKILL, OOM kill, a crash) lost the rows in flight. Now each
row is first appended to a journal file in one ``write(2)`` on the request path; a process
crash cannot lose what the kernel already holds. The writer thread ``fsync``s the journal at
least every ``fsync_s`` (1 s, as Redis's ``appendfsync everysec``), which bounds what a
power loss or kernel crash can take.

Layout of the directory: ``rows-<pid>-<token>-<n>.jsonl`` segments (one JSON array per
line, a ``LedgerRow``'s ``JOURNAL_FIELDS``), each held under an exclusive ``flock`` by the process writing it;
``dead-letter.jsonl`` holds rows the database refused, with the error (recoverable by hand).
A segment is rotated at ``segment_bytes`` and deleted once every row in it is committed or
quarantined. A segment nobody holds belongs to a process that died (or to rows given up
while the database was down): ``replay`` writes its rows at the next start, skipping those
already stored (rows are unique by ``request_id``), then deletes it. Locks die with their
process, so several processes (workers, replicas on one host) can share one directory.
"""

from __future__ import annotations

import fcntl
import json
import logging
import operator
import os
import secrets
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .base import LedgerRow, utcnow

log = logging.getLogger("calibroute.ledger")

SEGMENT_GLOB = "rows-*.jsonl"
DEAD_LETTER = "dead-letter.jsonl"
# A journal line is a JSON array of these, in this order; lines are decoded by zipping with
# this tuple, so a field added to LedgerRow is appended at the end (an older, shorter line
# leaves it at its default). An array, not an object: encoding it is the one cost on the
# request path, and field names would double it.
JOURNAL_FIELDS = ("created_at", "prompt", "request_id", "status", "http_status", "task_class", "model", "route_rule",
                  "budget", "prompt_tokens", "completion_tokens", "reasoning_tokens", "cost_usd", "baseline_cost_usd",
                  "latency_ms", "fallback_path", "stream", "api_key_id", "error", "confidence", "reason",
                  "cached_tokens", "cache_saved_usd", "affinity_saved_usd")
_ROW_FIELDS = {f.name for f in fields(LedgerRow)}
_values = operator.attrgetter(*JOURNAL_FIELDS[2:])
# ensure_ascii: any str, lone surrogates included, is escaped into valid ASCII JSON
_encoder = json.JSONEncoder(separators=(",", ":"), default=str)


def encode_line(row: LedgerRow, store_prompts: bool) -> bytes:
    """The journal line for ``row``; its prompt only when prompts are stored."""
    values = [row.created_at.timestamp(), row.prompt if store_prompts else None, *_values(row)]
    return (_encoder.encode(values) + "\n").encode("ascii")


def encode_row(row: LedgerRow, store_prompts: bool) -> dict[str, Any]:
    """``row`` as a JSON object (the dead-letter file, logs): readable, and replayable as a line."""
    data = {name: getattr(row, name) for name in JOURNAL_FIELDS}
    data["created_at"] = row.created_at.isoformat()
    if not store_prompts:
        data["prompt"] = None
    return data


def decode_row(data: Any) -> LedgerRow:
    """A journal line (array) or a row object (e.g. put back by hand from the dead-letter file)."""
    known = dict(zip(JOURNAL_FIELDS, data)) if isinstance(data, list) else dict(data)
    known = {k: v for k, v in known.items() if k in _ROW_FIELDS}
    when = known.get("created_at")
    if isinstance(when, (int, float)):
        known["created_at"] = datetime.fromtimestamp(when, timezone.utc)
    else:
        known["created_at"] = datetime.fromisoformat(when) if when else utcnow()
    return LedgerRow(**known)


def _line(data: object) -> bytes:
    return (_encoder.encode(data) + "\n").encode("ascii")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


@dataclass(eq=False)
class _Segment:
    path: Path
    fd: int
    size: int = 0
    outstanding: int = 0  # rows appended and not yet committed, quarantined or given up
    keep: bool = False  # holds rows given up: leave the file for a later replay
    dirty: bool = False  # written since the last fsync


class Journal:
    """Append-only row journal of one process. ``append`` runs on the request path; ``settle``,
    ``quarantine``, ``keep`` and ``tick`` run on the ledger's writer thread."""

    def __init__(self, directory: Path, *, store_prompts: bool = False, segment_bytes: int = 1 << 20,
                 fsync_s: float = 1.0) -> None:
        self.directory = directory
        self.store_prompts = store_prompts
        self.segment_bytes = segment_bytes
        self.fsync_s = fsync_s
        self.errors = 0  # rows that could not be journaled (still written to the database)
        self.kept: list[Path] = []  # our segments released with rows given up: to replay when the database is back
        self._lock = threading.Lock()  # guards the fields below; held for one write(2) at most
        self._token = f"{os.getpid()}-{secrets.token_hex(4)}"
        self._serial = 0
        self._segments: list[_Segment] = []
        self._of: dict[int, _Segment] = {}  # id(row) -> its segment, while the row is outstanding
        self._synced_at = time.monotonic()
        self._dir_dirty = False
        self._closed = False
        self._current = self._open_segment()

    # -- the request path -----------------------------------------------------------------
    def append(self, row: LedgerRow) -> None:
        """Put ``row`` on disk (the kernel's page cache) now; never raises."""
        try:
            line = encode_line(row, self.store_prompts)
            with self._lock:
                if self._closed:
                    raise OSError("journal closed")
                seg = self._current
                if seg.size >= self.segment_bytes:
                    seg = self._rotate()
                _write_all(seg.fd, line)
                seg.size += len(line)
                seg.outstanding += 1
                seg.dirty = True
                self._of[id(row)] = seg
        except Exception as exc:
            self.errors += 1
            log.error("ledger journal %s: could not journal row %s: %s", self.directory, row.request_id, exc)

    # -- the writer thread -----------------------------------------------------------------
    def settle(self, rows: list[LedgerRow]) -> None:
        """These rows are in the database (or quarantined): their segments may go."""
        with self._lock:
            for row in rows:
                seg = self._of.pop(id(row), None)
                if seg is not None:
                    seg.outstanding -= 1
            done = self._finished()
        self._release(done)

    def keep(self, rows: list[LedgerRow]) -> None:
        """These rows were given up (database unavailable): keep their segments for a replay."""
        with self._lock:
            for row in rows:
                seg = self._of.pop(id(row), None)
                if seg is not None:
                    seg.outstanding -= 1
                    seg.keep = True
            if self._current.keep and not self._closed:
                self._rotate()
            done = self._finished()
        self._release(done)

    def quarantine(self, row: LedgerRow, exc: BaseException) -> None:
        """Keep a row the database refused in the dead-letter file, with the reason."""
        quarantine(self.directory, row, exc, self.store_prompts)
        self.settle([row])

    def tick(self) -> None:
        """fsync what was written at least every ``fsync_s``."""
        if time.monotonic() - self._synced_at >= self.fsync_s:
            self.sync()

    def sync(self) -> None:
        with self._lock:
            dirty = [s for s in self._segments if s.dirty]
            for s in dirty:
                s.dirty = False
            dir_dirty, self._dir_dirty = self._dir_dirty, False
            self._synced_at = time.monotonic()
        for s in dirty:  # fds are closed only on this thread (``_release``), so they are still open
            os.fsync(s.fd)
        if dir_dirty:
            _fsync_dir(self.directory)

    def close(self) -> None:
        """After the writer has drained: delete what is settled, leave the rest for a replay."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            segments, self._segments = self._segments, []
        for seg in segments:
            if seg.outstanding or seg.keep:
                os.fsync(seg.fd)
            else:
                seg.path.unlink(missing_ok=True)
            os.close(seg.fd)

    # -- segments ----------------------------------------------------------------------------
    def _open_segment(self) -> _Segment:
        self._serial += 1
        path = self.directory / f"rows-{self._token}-{self._serial:06d}.jsonl"
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o600)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a new file: nobody else holds it
        seg = _Segment(path, fd)
        self._segments.append(seg)
        self._dir_dirty = True
        return seg

    def _rotate(self) -> _Segment:
        self._current = self._open_segment()
        return self._current

    def _finished(self) -> list[_Segment]:
        done = [s for s in self._segments if s is not self._current and s.outstanding == 0]
        self._segments = [s for s in self._segments if s not in done]
        return done

    def _release(self, done: list[_Segment]) -> None:
        for seg in done:
            if seg.keep:
                os.fsync(seg.fd)
                self.kept.append(seg.path)
            else:
                seg.path.unlink(missing_ok=True)
            os.close(seg.fd)  # releases the lock: a kept segment is now free for a replay


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def quarantine(directory: Path, row: LedgerRow, exc: BaseException, store_prompts: bool) -> None:
    """Append ``row`` and why the database refused it to the dead-letter file."""
    error = "".join(traceback.format_exception_only(exc)).strip()
    write_dead_letter(directory, [{"at": utcnow().isoformat(), "error": error, "row": encode_row(row, store_prompts)}])


def write_dead_letter(directory: Path, records: list[dict[str, Any]]) -> None:
    fd = os.open(directory / DEAD_LETTER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        _write_all(fd, b"".join(_line(r) for r in records))
        os.fsync(fd)
    finally:
        os.close(fd)


def _locked(path: Path) -> int | None:
    """``path`` opened and locked by us, or None: gone, or a live process is writing it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:  # replayed and removed by another process meanwhile
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.fstat(fd).st_nlink:  # still there after we got the lock
            return fd
    except BlockingIOError:
        pass
    os.close(fd)
    return None


def replay(directory: Path, write: Callable[[list[LedgerRow]], bool], *, paths: list[Path] | None = None,
           chunk: int = 500) -> int:
    """Write the rows of segments no live process holds (all in ``directory``, or ``paths``)
    through ``write`` (False when rows had to be given up); delete each segment once all
    of it is settled. Returns the rows read."""
    total = 0
    for path in sorted(directory.glob(SEGMENT_GLOB)) if paths is None else paths:
        fd = _locked(path)
        if fd is None:
            continue
        try:
            with os.fdopen(os.dup(fd), "rb") as f:
                lines = f.read().splitlines()
            rows, bad = [], []
            for raw in lines:
                try:
                    rows.append(decode_row(json.loads(raw)))
                except (ValueError, TypeError, KeyError) as exc:  # a torn last line, or not a row
                    bad.append({"at": utcnow().isoformat(), "error": f"unreadable journal line: {exc}",
                                "line": raw.decode("utf-8", "replace"), "segment": path.name})
            if bad:
                write_dead_letter(directory, bad)
            settled = all([write(rows[i:i + chunk]) for i in range(0, len(rows), chunk)])
            total += len(rows)
            log.warning("ledger journal: replayed %d rows from %s%s", len(rows), path.name,
                        "" if settled else " (some could not be written; kept for later)")
            if settled:
                path.unlink(missing_ok=True)
        finally:
            os.close(fd)
    return total

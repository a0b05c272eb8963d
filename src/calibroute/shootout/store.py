"""The run journal: every finished call and every grade, appended and fsynced as it lands.

A shoot-out pays for each call once. The journal is an append-only JSONL file; each line is
written in one ``write`` and fsynced before the run moves on, so after Ctrl-C, a crash or
``kill -9`` every call that finished is on disk (at worst the last line is torn, and is cut
off on reopening). A call is journaled before it is graded: a run killed while grading (or
while the judge answers) grades on resume without asking the model again. An exclusive lock
keeps two runs from writing one journal.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO, Self

from ..errors import DataError, InputError

CALL, GRADE = "call", "grade"


def cell_key(task_id: str, model: str, budget: str, prompt_text: str) -> str:
    """One (task, model, budget) call; the prompt's hash makes an edited task a new call, not a stale hit."""
    digest = hashlib.sha256(prompt_text.encode("utf-8")).hexdigest()[:12]
    return f"{task_id}\x1f{model}\x1f{budget}\x1f{digest}"


@dataclass
class CallRecord:
    """What one call did and how it was graded (``score`` None until graded)."""

    key: str
    task_id: str
    task: str
    model: str
    budget: str
    prompt: str
    status: str = "ok"  # "ok" or "error" (a failed call, kept and reported, never dropped)
    error: str | None = None
    answer: str = ""
    input_tokens: int = 0
    output_tokens: int = 0  # every generated token, reasoning included
    reasoning_tokens: int = 0
    cached_tokens: int = 0  # of the input tokens, read from the prompt cache (priced at the cached price)
    ttft_s: float | None = None
    latency_s: float | None = None
    tokens_per_s: float | None = None
    cost_usd: float = 0.0
    attempts: int = 1
    budget_tokens: float | None = None
    # set by the grade entry
    score: float | None = None
    grader: str | None = None
    extracted: str | None = None
    judge_model: str | None = None
    judge_cost_usd: float = 0.0
    judge_error: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def graded(self) -> bool:
        return self.score is not None

    @property
    def spend_usd(self) -> float:
        return self.cost_usd + self.judge_cost_usd


_GRADE_FIELDS = ("score", "grader", "extracted", "judge_model", "judge_cost_usd", "judge_error")
_CALL_FIELDS = {f.name for f in fields(CallRecord)} - set(_GRADE_FIELDS)


class Journal:
    """Append-only JSONL of call and grade entries; ``records`` is the merged view, last entry wins."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.records: dict[str, CallRecord] = {}
        self.repaired = 0  # bytes of a torn last line cut off on opening
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh: BinaryIO = open(self.path, "a+b")  # noqa: SIM115 - held for the run, closed in close()
        except OSError as exc:
            raise InputError(f"journal {self.path}: cannot open: {exc.strerror or exc}") from None
        try:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._fh.close()
            raise InputError(f"journal {self.path} is in use by another shoot-out (one run per journal)") from None
        self._load()

    def _load(self) -> None:
        self._fh.seek(0)
        data = self._fh.read()
        end = data.rfind(b"\n") + 1
        if end < len(data):  # a line torn by a kill mid-write: it never counted
            self.repaired = len(data) - end
            self._fh.truncate(end)
            os.fsync(self._fh.fileno())
        for no, line in enumerate(data[:end].splitlines(), start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                raise DataError(f"journal {self.path}: line {no} is not JSON (not a shoot-out journal?)") from None
            self._apply(entry, no)

    def _apply(self, entry: dict[str, Any], no: int = 0) -> None:
        kind, key = entry.get("kind"), entry.get("key")
        if kind == CALL and isinstance(key, str):
            self.records[key] = CallRecord(**{k: v for k, v in entry.items() if k in _CALL_FIELDS})
        elif kind == GRADE and key in self.records:
            rec = self.records[key]
            for name in _GRADE_FIELDS:
                setattr(rec, name, entry.get(name, getattr(rec, name)))
        elif kind not in (CALL, GRADE):
            raise DataError(f"journal {self.path}: line {no}: unknown entry kind {kind!r}")

    def _append(self, entry: dict[str, Any]) -> None:
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False).encode("utf-8") + b"\n"
        self._fh.seek(0, os.SEEK_END)
        self._fh.write(line)
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._apply(entry)

    def record_call(self, rec: CallRecord) -> None:
        """Journal a finished (or failed) call, before it is graded."""
        entry = {k: v for k, v in asdict(rec).items() if k in _CALL_FIELDS}
        self._append({"kind": CALL, **entry})

    def record_grade(self, key: str, score: float, grader: str, extracted: str | None = None, *,
                     judge_model: str | None = None, judge_cost_usd: float = 0.0, judge_error: str | None = None) -> None:
        self._append({"kind": GRADE, "key": key, "score": score, "grader": grader, "extracted": extracted,
                      "judge_model": judge_model, "judge_cost_usd": judge_cost_usd, "judge_error": judge_error})

    def spent_usd(self) -> float:
        return sum(r.spend_usd for r in self.records.values())

    def close(self) -> None:
        if not self._fh.closed:
            fcntl.flock(self._fh.fileno(), fcntl.LOCK_UN)
            self._fh.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

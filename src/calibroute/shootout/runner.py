"""Run every (task, model, budget) call through the gateway's backend layer, grade it, journal it.

Calls go out the way the gateway sends them: the portfolio's backend for the model (one pooled
client each), the budget translated for the model's API (``budgets.translate``), think-tag
models forced on the stream (``budgets.forcing``), tokens counted by the gateway's ``Tally``.
Each call is streamed, so time to first token is measured. Per backend (base URL) at most
``concurrency`` calls are in flight. Retryable failures (429, 5xx, timeouts, connection
errors) are retried with jittered exponential backoff that honours Retry-After; a call that
still fails is journaled as failed, never dropped. A model whose calls keep failing
(``abort_after`` in a row) stops the run with one clear error: finished calls stay journaled.

The spend cap is never exceeded: before a call starts, its worst case (prompt estimate plus
the full output budget, and the judge's) is reserved against ``max_usd``; the first call
that does not fit stops the run cleanly, letting calls in flight finish.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..backends import Backend, backend_factory
from ..budgets.forcing import ForcingConfig, ThinkForcer, estimate_tokens, initial_body
from ..budgets.translate import translate_budget
from ..config import Budget, ModelSpec, Portfolio
from ..errors import BackendError, BackendUnavailable, InputError
from ..gateway.streaming import Tally
from .budgets import BudgetSetting
from .graders import grade, judge_messages, parse_judge_score
from .store import CallRecord, Journal, cell_key
from .tasks import Task


@dataclass(frozen=True)
class RunSettings:
    concurrency: int = 4  # calls in flight per backend (base URL)
    retries: int = 3
    backoff_s: float = 1.0
    backoff_max_s: float = 30.0
    max_usd: float | None = None
    abort_after: int = 5  # consecutive failed calls of one model that stop the run
    temperature: float | None = 0.0
    judge: str | None = None
    judge_max_tokens: int = 256
    regrade: bool = False  # grade every journaled answer again (a fixed grader), without calling the models


@dataclass(frozen=True)
class Cell:
    task: Task
    model: str
    setting: BudgetSetting

    @property
    def key(self) -> str:
        return cell_key(self.task.id, self.model, self.setting.label, json.dumps(self.task.messages, sort_keys=True))


@dataclass
class RunResult:
    planned: int
    reused: int = 0  # finished in an earlier run: not called again
    called: int = 0
    failed: int = 0
    stopped: str | None = None  # why the run stopped early (spend cap), None when complete
    spent_usd: float = 0.0


@dataclass
class Generation:
    text: str
    tally: Tally
    ttft_s: float | None
    latency_s: float
    attempts: int


@dataclass
class SpendGuard:
    """Spent plus reserved worst cases never pass the cap."""

    cap: float | None
    spent: float = 0.0
    reserved: float = 0.0

    def reserve(self, worst: float) -> bool:
        if self.cap is not None and self.spent + self.reserved + worst > self.cap:
            return False
        self.reserved += worst
        return True

    def settle(self, worst: float, actual: float) -> None:
        self.reserved -= worst
        self.spent += actual


@dataclass
class _Failures:
    in_a_row: dict[str, int] = field(default_factory=dict)

    def note(self, model: str, ok: bool) -> int:
        self.in_a_row[model] = 0 if ok else self.in_a_row.get(model, 0) + 1
        return self.in_a_row[model]


def plan(tasks: list[Task], models: list[str], settings: list[BudgetSetting]) -> list[Cell]:
    """Every call of the run, task by task, so running accuracies compare models on the same items."""
    return [Cell(t, m, s) for t in tasks for m in models for s in settings]


class Shootout:
    def __init__(self, portfolio: Portfolio, models: list[str], settings: list[BudgetSetting], tasks: list[Task],
                 journal: Journal, run: RunSettings = RunSettings(), *, backends: dict[str, Backend] | None = None,
                 on_record: Callable[[CallRecord], None] | None = None) -> None:
        self.portfolio, self.run_settings, self.journal = portfolio, run, journal
        self.specs: dict[str, ModelSpec] = {m: portfolio.model(m) for m in models}  # UnknownModelError names it
        if run.judge is not None:
            self.specs.setdefault(run.judge, portfolio.model(run.judge))
        judged = [t.id for t in tasks if t.grader == "judge"]
        if judged and run.judge is None:
            raise InputError(f"{len(judged)} task(s) need a judge (grader 'judge', e.g. {judged[0]}): pass --judge MODEL")
        self.cells = plan(tasks, models, settings)
        self.backends = backends
        self.on_record = on_record or (lambda rec: None)
        self.spend = SpendGuard(run.max_usd, journal.spent_usd())
        self.failures = _Failures()
        self.forcing = ForcingConfig()
        self.stop_reason: str | None = None
        self.abort: BackendError | None = None

    # -- the run ------------------------------------------------------------------------------
    def pending(self) -> tuple[list[Cell], list[Cell]]:
        """(cells to call, cells called before but still to grade: interrupted, or the judge failed)."""
        done = self.journal.records
        todo = [c for c in self.cells if c.key not in done or done[c.key].status != "ok"]
        regrade = [c for c in self.cells if c.key in done and done[c.key].status == "ok"
                   and (self.run_settings.regrade or not done[c.key].graded or done[c.key].judge_error)]
        return todo, regrade

    async def run(self) -> RunResult:
        result = RunResult(planned=len(self.cells))
        done = self.journal.records
        todo, regrade = self.pending()
        result.reused = len(self.cells) - len(todo)
        own = self.backends is None
        if own:
            self.backends = {name: backend_factory(spec.backend.api_style)(spec) for name, spec in self.specs.items()}
        try:
            for cell in regrade:  # no second call to the model
                await self._grade(cell, done[cell.key])
            groups: dict[str, list[Cell]] = {}
            for cell in todo:
                groups.setdefault(self.specs[cell.model].backend.base_url, []).append(cell)
            workers = [self._worker(queue, result) for queue in groups.values()
                       for _ in range(min(self.run_settings.concurrency, len(queue)))]
            await asyncio.gather(*workers)
        finally:
            if own and self.backends:
                for backend in self.backends.values():
                    await backend.aclose()
        result.stopped = self.stop_reason
        result.spent_usd = self.spend.spent
        if self.abort is not None:
            raise self.abort
        return result

    async def _worker(self, queue: list[Cell], result: RunResult) -> None:
        while queue and self.stop_reason is None and self.abort is None:
            cell = queue.pop(0)
            worst = self._worst_case(cell)
            if not self.spend.reserve(worst):
                self.stop_reason = (f"spend cap ${self.spend.cap:g} reached (${self.spend.spent:.4f} spent; the next call "
                                    f"could cost up to ${worst:.4f})")
                return
            actual = 0.0
            try:
                rec = await self._call(cell)
                actual = rec.cost_usd
                self.journal.record_call(rec)
                result.called += 1
                if rec.status == "ok":
                    actual += await self._grade(cell, rec)
                else:
                    result.failed += 1
                    self.on_record(rec)
            finally:
                self.spend.settle(worst, actual)
            if self.failures.note(cell.model, rec.status == "ok") >= self.run_settings.abort_after and self.abort is None:
                self.abort = BackendUnavailable(
                    f"model {cell.model}: {self.run_settings.abort_after} calls in a row failed (last: {rec.error}); "
                    f"finished calls are kept in {self.journal.path}, rerun the same command to resume")

    def _worst_case(self, cell: Cell) -> float:
        prompt = _prompt_tokens_bound(cell.task.messages)
        worst = self.specs[cell.model].cost_usd(prompt, cell.setting.budget.max_output_tokens)
        if self.run_settings.judge is not None and cell.task.grader == "judge":
            judge_prompt = prompt + (len(cell.task.reference) + len(cell.task.rubric or "")) // 3 + 200
            worst += self.specs[self.run_settings.judge].cost_usd(
                judge_prompt + cell.setting.budget.max_output_tokens, self.run_settings.judge_max_tokens)
        return worst

    # -- one call -----------------------------------------------------------------------------
    async def _call(self, cell: Cell) -> CallRecord:
        spec = self.specs[cell.model]
        rec = CallRecord(key=cell.key, task_id=cell.task.id, task=cell.task.task, model=cell.model, budget=cell.setting.label,
                         prompt=cell.task.prompt, budget_tokens=cell.setting.budget_tokens)
        try:
            gen = await self.generate(cell.model, cell.setting.budget, list(cell.task.messages))
        except BackendError as exc:
            rec.status, rec.error = "error", str(exc) or type(exc).__name__
            rec.attempts = getattr(exc, "attempts", 1)
            return rec
        t = gen.tally
        rec.answer = gen.text
        rec.input_tokens, rec.output_tokens, rec.reasoning_tokens = t.prompt_tokens, t.completion_tokens, t.reasoning_tokens
        rec.ttft_s, rec.latency_s, rec.attempts = gen.ttft_s, gen.latency_s, gen.attempts
        decode_s = gen.latency_s - (gen.ttft_s or 0.0)
        rec.tokens_per_s = t.completion_tokens / decode_s if decode_s > 0 and t.completion_tokens > 1 else None
        rec.cached_tokens = t.cached_tokens
        rec.cost_usd = spec.cost_usd(t.prompt_tokens, t.completion_tokens, t.cached_tokens)
        return rec

    async def generate(self, model: str, budget: Budget, messages: list[dict[str, Any]]) -> Generation:
        """One streamed completion with retries; raises the last BackendError (``attempts`` set on it)."""
        spec, backend = self.specs[model], self.backends[model]  # type: ignore[index]
        tr = translate_budget(budget, spec.reasoning, native_thinking_budget=spec.backend.native_thinking_budget)
        body: dict[str, Any] = {"messages": messages, "stream": True, "stream_options": {"include_usage": True}}
        if self.run_settings.temperature is not None:
            body["temperature"] = self.run_settings.temperature
        body = tr.apply(body)
        if tr.think is not None:
            body = initial_body(body, tr.think, self.forcing)
        prompt_estimate = sum(estimate_tokens(str(m.get("content") or "")) for m in messages)
        s = self.run_settings
        for attempt in range(s.retries + 1):
            try:
                return await self._stream_once(backend, body, tr.think, prompt_estimate, attempt + 1)
            except BackendError as exc:
                exc.attempts = attempt + 1  # type: ignore[attr-defined]
                if not exc.retryable or attempt == s.retries:
                    raise
                pause = min(s.backoff_max_s, s.backoff_s * 2.0**attempt) * (0.5 + random.random() / 2)
                if exc.retry_after_s is not None:
                    pause = max(pause, min(exc.retry_after_s, s.backoff_max_s * 4))
                await asyncio.sleep(pause)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stream_once(self, backend: Backend, body: dict[str, Any], think: Any, prompt_estimate: int,
                           attempt: int) -> Generation:
        started = time.perf_counter()
        stream = await backend.open_stream(body)
        forcer = ThinkForcer(stream, backend.open_stream, body, think, self.forcing) if think is not None else None
        tally = Tally(prompt_estimate)
        parts: list[str] = []
        ttft: float | None = None
        try:
            async for ev in (forcer if forcer is not None else stream):
                tally.see(ev.data)
                for choice in ev.data.get("choices") or ():
                    delta = choice.get("delta") or {}
                    content = delta.get("content")
                    if ttft is None and (content or delta.get("reasoning_content") or delta.get("reasoning")):
                        ttft = time.perf_counter() - started
                    if isinstance(content, str):
                        parts.append(content)
        finally:
            await (forcer.aclose() if forcer is not None else stream.aclose())
        if forcer is not None:
            tally.adopt(forcer)
        return Generation("".join(parts), tally, ttft, time.perf_counter() - started, attempt)

    # -- grading ------------------------------------------------------------------------------
    async def _grade(self, cell: Cell, rec: CallRecord) -> float:
        """Grade and journal; returns the judge's cost (0 for graders without a model call)."""
        answer = rec.answer
        if cell.task.grader != "judge":
            g = await asyncio.to_thread(grade, cell.task, answer)
            self.journal.record_grade(rec.key, g.score, cell.task.grader, g.extracted)
            self.on_record(self.journal.records[rec.key])
            return 0.0
        judge = self.run_settings.judge
        assert judge is not None
        cost, score, error = 0.0, 0.0, None
        try:
            gen = await self.generate(judge, Budget(max_output_tokens=self.run_settings.judge_max_tokens),
                                      judge_messages(cell.task, answer))
            t = gen.tally
            cost = self.specs[judge].cost_usd(t.prompt_tokens, t.completion_tokens, t.cached_tokens)
            parsed = parse_judge_score(gen.text)
            if parsed is None:
                error = f"judge gave no score: {gen.text[-120:]!r}"
            else:
                score = parsed
        except BackendError as exc:
            error = f"judge call failed: {exc}"
        self.journal.record_grade(rec.key, score, "judge", None, judge_model=judge, judge_cost_usd=cost, judge_error=error)
        self.on_record(self.journal.records[rec.key])
        return cost


def _prompt_tokens_bound(messages: tuple[Any, ...]) -> int:
    """A safe over-estimate of prompt tokens (about 3 characters a token, plus chat-template overhead)."""
    return len(json.dumps(list(messages), ensure_ascii=False)) // 3 + 16 * len(messages) + 16

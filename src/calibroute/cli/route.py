"""``calibroute route``: decide one prompt, or a JSONL file of them, without calling any model."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Annotated, Any, Optional

import typer
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from ..errors import InputError
from ..router import Router
from ..types import Decision, Hints, class_from_hint

MAX_PROMPT_BYTES = 4 * 1024 * 1024
err_console = Console(stderr=True)


def hints_from(obj: dict[str, Any]) -> Hints:
    """Hints from a JSONL line or request: model, domain/task_class, max_tokens."""
    hint = obj.get("domain") or obj.get("task_class")
    max_tokens = obj.get("max_tokens")
    if max_tokens is not None and (not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens <= 0):
        raise InputError("max_tokens must be a positive integer")
    model = obj.get("model")
    if model is not None and not isinstance(model, str):
        raise InputError("model must be a string")
    return Hints(
        model=model if model not in (None, "auto") else None,
        task_class=class_from_hint(str(hint)) if hint else None,
        max_output_tokens=max_tokens,
    )


def decision_record(item_id: Any, decision: Decision) -> dict[str, Any]:
    out = {"id": item_id}
    out.update(decision.to_dict())
    return out


def route_line(router: Router, raw: bytes, lineno: int) -> dict[str, Any]:
    """One JSONL line -> one output record; raises InputError naming the line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"line {lineno}: not UTF-8 (byte {exc.start})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"line {lineno}: invalid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(obj, dict) or "id" not in obj:
        raise InputError(f"line {lineno}: expected an object with 'id' and 'prompt' or 'messages'")
    try:
        if "prompt" in obj:
            decision = router.decide(prompt=obj["prompt"], hints=hints_from(obj))
        elif "messages" in obj:
            decision = router.decide(messages=obj["messages"], hints=hints_from(obj))
        else:
            raise InputError("missing 'prompt' or 'messages'")
    except InputError as exc:
        raise InputError(f"line {lineno} (id {obj['id']!r}): {exc}") from None
    return decision_record(obj["id"], decision)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for lineno, raw in enumerate(stream, start=1):
        raw = raw.rstrip(b"\r\n")
        if raw.strip():
            yield lineno, raw


def route_file(router: Router, src: Path, dst: Path | None) -> tuple[int, int]:
    """Route every line of ``src``; bad lines go to stderr with their number. Returns (ok, failed)."""
    ok = failed = 0
    try:
        total = sum(1 for _ in src.open("rb"))
        stream = src.open("rb")
    except OSError as exc:
        raise InputError(f"{src}: cannot read: {exc.strerror}") from None
    out: IO[str] = dst.open("w", encoding="utf-8") if dst is not None else sys.stdout
    try:
        with stream, Progress(console=err_console, transient=True, disable=total < 200) as progress:
            task = progress.add_task("routing", total=total)
            for lineno, raw in _lines(stream):
                try:
                    record = route_line(router, raw, lineno)
                except InputError as exc:
                    failed += 1
                    err_console.print(f"{src}:{exc}", markup=False, highlight=False)
                else:
                    ok += 1
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                progress.update(task, completed=lineno)
    finally:
        if dst is not None:
            out.close()
    return ok, failed


def print_decision(decision: Decision) -> None:
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("task class", f"{decision.task_class.value} (confidence {decision.confidence:.2f})")
    if decision.difficulty is not None:
        table.add_row("P(cheaper ok)", f"{decision.difficulty:.2f}")
    table.add_row("model", decision.model)
    table.add_row("fallbacks", ", ".join(decision.fallbacks) or "-")
    table.add_row("budget", decision.budget.describe())
    table.add_row("est. cost", f"${decision.estimated_cost_usd:.6f} (upper bound)")
    table.add_row("rule", " -> ".join(decision.rules) if len(decision.rules) > 1 else decision.rule)
    table.add_row("reason", decision.reason)
    if decision.scores:
        table.add_row("scores", "  ".join(f"{k} {v:.2f}" for k, v in decision.scores.items()))
    Console().print(table)


def route(
    prompt: Annotated[Optional[str], typer.Argument(help="the prompt to route; '-' reads stdin")] = None,
    input: Annotated[Optional[Path], typer.Option("--input", "-i", help="JSONL: {id, prompt|messages} per line")] = None,
    output: Annotated[Optional[Path], typer.Option("--output", "-o", help="JSONL of decisions (default stdout)")] = None,
    config: Annotated[Optional[Path], typer.Option("--config", "-c", envvar="CALIBROUTE_CONFIG", help="portfolio YAML")] = None,
    model: Annotated[Optional[str], typer.Option(help="force this configured model")] = None,
    domain: Annotated[Optional[str], typer.Option(help="task class or domain hint, e.g. math, creative")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the decision as JSON")] = False,
) -> None:
    """Show which model and budget calibroute would choose. No model is called."""
    if (prompt is None) == (input is None):
        raise InputError("give a PROMPT or --input FILE.jsonl (not both)")
    router = Router.from_config(str(config) if config else None)
    if input is not None:
        ok, failed = route_file(router, input, output)
        err_console.print(f"routed {ok} line(s), {failed} failed", highlight=False)
        raise typer.Exit(1 if failed else 0)
    assert prompt is not None
    if prompt == "-":
        data = sys.stdin.buffer.read(MAX_PROMPT_BYTES + 1)
        if len(data) > MAX_PROMPT_BYTES:
            raise InputError(f"prompt on stdin exceeds {MAX_PROMPT_BYTES} bytes")
        try:
            prompt = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"stdin is not UTF-8 (byte {exc.start})") from None
    decision = router.decide(prompt=prompt, hints=hints_from({"model": model, "domain": domain}))
    if as_json:
        typer.echo(json.dumps(decision.to_dict(), ensure_ascii=False))
    else:
        print_decision(decision)


def register(app: typer.Typer) -> None:
    app.command("route")(route)

"""Task sets for a shoot-out: questions with references, built in or from the user's own file.

A built-in set is read in place from the shared data folder (``datasets.data_root()``), each
with the grader its answers need; ``NAME:N`` takes a seeded sample of N items, the same
items on every run, so a resumed run asks the same questions. A user file (JSONL, CSV or
Parquet) has ``id``, ``prompt`` or ``messages``, ``reference`` and optionally ``grader``,
``task``, ``tests`` (code) and ``rubric`` (judge).
"""

from __future__ import annotations

import json
import math
import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..conversation import messages_text
from ..errors import DataError, InputError
from ..tabular import read_records

GRADERS = ("numeric", "choice", "math", "exact", "contains", "code", "judge")
NUMERIC_ANSWER = "Think step by step, then give the final answer on the last line as 'The answer is N'."
CHOICE_ANSWER = "Answer with the letter of the correct option only."


@dataclass(frozen=True)
class Task:
    """One question: what is sent, what a right answer is, and how an answer is graded."""

    id: str
    messages: tuple[Mapping[str, Any], ...]
    reference: str
    grader: str
    task: str
    tests: tuple[str, ...] = ()  # code: assertions run against the answer
    setup: tuple[str, ...] = ()  # code: imports the tests need
    rubric: str | None = None  # judge: what a good answer has
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> str:
        return messages_text(self.messages)


def _user(text: str) -> tuple[Mapping[str, Any], ...]:
    return ({"role": "user", "content": text},)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise DataError(f"{path}: missing (is the shared data folder complete?)")
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _number_text(value: Any) -> str:
    x = float(value)
    return str(int(x)) if x.is_integer() else repr(x)


def gsm8k(root: Path) -> list[Task]:
    rows = _jsonl(root / "prompts" / "gsm8k" / "test.jsonl")
    return [Task(f"gsm8k/{i}", _user(f"{r['question']}\n\n{NUMERIC_ANSWER}"),
                 r["answer"].rsplit("####", 1)[1].strip().replace(",", ""), "numeric", "gsm8k") for i, r in enumerate(rows)]


def _choices_text(choices: list[str]) -> str:
    return "\n".join(f"{'ABCDEFGHIJ'[i]}. {c}" for i, c in enumerate(choices))


def mmlu_stem(root: Path) -> list[Task]:
    rows = _jsonl(root / "prompts" / "qwen25_math_eval" / "mmlu_stem" / "test.jsonl")
    return [Task(f"mmlu-stem/{i}", _user(f"{r['question']}\n\n{_choices_text(r['choices'])}\n\n{CHOICE_ANSWER}"),
                 "ABCDEFGHIJ"[int(r["answer"])], "choice", "mmlu-stem",
                 extra={"subject": r.get("type"), "choices": list(r["choices"])})
            for i, r in enumerate(rows)]


def svamp(root: Path) -> list[Task]:
    rows = _jsonl(root / "prompts" / "qwen25_math_eval" / "svamp" / "test.jsonl")
    return [Task(f"svamp/{r.get('ID', i)}", _user(f"{r['Body'].strip()} {r['Question'].strip()}\n\n{NUMERIC_ANSWER}"),
                 _number_text(r["Answer"]), "numeric", "svamp") for i, r in enumerate(rows)]


def aqua(root: Path) -> list[Task]:
    rows = _jsonl(root / "prompts" / "qwen25_math_eval" / "aqua" / "test.jsonl")
    return [Task(f"aqua/{i}", _user(f"{r['question']}\n\n" + "\n".join(r["options"]) + f"\n\n{CHOICE_ANSWER}"),
                 str(r["correct"]).strip(), "choice", "aqua",
                 extra={"choices": [re.sub(r"^[A-J]\)\s*", "", o) for o in r["options"]]}) for i, r in enumerate(rows)]


MATH_ANSWER = "Give the final answer in \\boxed{}."


def college_math(root: Path) -> list[Task]:
    rows = _jsonl(root / "prompts" / "qwen25_math_eval" / "college_math" / "test.jsonl")
    return [Task(f"college-math/{i}", _user(f"{r['question']}\n\n{MATH_ANSWER}"), str(r["answer"]), "math", "college-math")
            for i, r in enumerate(rows)]


def olympiadbench(root: Path) -> list[Task]:
    rows = _jsonl(root / "prompts" / "qwen25_math_eval" / "olympiadbench" / "test.jsonl")
    out = []
    for r in rows:
        answers = r.get("final_answer") or []
        if len(answers) != 1:  # multi-part answers need a judge; the single ones grade by value
            continue
        context = f"{r['context']}\n\n" if r.get("context") else ""
        out.append(Task(f"olympiadbench/{r['id']}", _user(f"{context}{r['question']}\n\n{MATH_ANSWER}"), str(answers[0]),
                        "math", "olympiadbench"))
    return out


def mbpp(root: Path) -> list[Task]:
    path = root / "prompts" / "mbpp" / "sanitized-mbpp.json"
    if not path.is_file():
        raise DataError(f"{path}: missing (is the shared data folder complete?)")
    rows = json.loads(path.read_text("utf-8"))
    out = []
    for r in rows:
        tests = tuple(r["test_list"])
        text = (f"{r['prompt']}\nYour code should pass these tests:\n" + "\n".join(tests)
                + "\n\nWrite the Python code in one ```python block.")
        out.append(Task(f"mbpp/{r['task_id']}", _user(text), r["code"], "code", "mbpp", tests=tests,
                        setup=tuple(r.get("test_imports") or ())))
    return out


def _knowledge(file: str, name: str) -> Callable[[Path], list[Task]]:
    def load(root: Path) -> list[Task]:
        rows = _jsonl(root / "tts_knowledge_budgets" / "benchmarks" / file)
        return [Task(f"{name}/{r['id']}", _user(r["problem"].strip()), str(r["answer"]).strip(), "contains", name)
                for r in rows if str(r.get("answer") or "").strip()]

    return load


# name -> loader(data root); the SOURCE.md of each folder says where the data came from.
BUILTIN: dict[str, Callable[[Path], list[Task]]] = {
    "gsm8k": gsm8k,
    "mmlu-stem": mmlu_stem,
    "svamp": svamp,
    "aqua": aqua,
    "college-math": college_math,
    "olympiadbench": olympiadbench,
    "mbpp": mbpp,
    "simpleqa": _knowledge("simpleqa_800.jsonl", "simpleqa"),
    "frames": _knowledge("frames_824.jsonl", "frames"),
}
KNOWLEDGE = ("simpleqa", "frames")


def sample(tasks: list[Task], n: int | None, seed: int) -> list[Task]:
    """``n`` items drawn with ``seed`` (all when n is None), kept in their file order."""
    if n is None or n >= len(tasks):
        return tasks
    keep = sorted(random.Random(seed).sample(range(len(tasks)), n))
    return [tasks[i] for i in keep]


# ---- the user's own file ---------------------------------------------------------------------

_NUMBER = re.compile(r"^[-+]?[\d,]*\.?\d+(?:[eE][-+]?\d+)?$")


def default_grader(reference: str) -> str:
    """A grader for a file row that names none: numbers by value, a lone letter as a choice, else exact text."""
    ref = reference.strip()
    if _NUMBER.match(ref.replace("$", "")):
        return "numeric"
    if re.fullmatch(r"[A-J]", ref):
        return "choice"
    return "exact"


def _empty(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value)) or str(value).strip() == ""


def _messages(where: str, value: Any) -> tuple[Mapping[str, Any], ...]:
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise DataError(f"{where}, column messages: not a JSON list of messages") from None
    if not isinstance(value, list) or not value or not all(isinstance(m, dict) and "role" in m for m in value):
        raise DataError(f"{where}, column messages: expected a non-empty list of {{role, content}} objects")
    return tuple(value)


def _lines(value: Any) -> tuple[str, ...]:
    if _empty(value):
        return ()
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return tuple(line for line in value.splitlines() if line.strip())
    return tuple(str(v) for v in value) if isinstance(value, (list, tuple)) else (str(value),)


def load_task_file(path: Path) -> list[Task]:
    """The user's task file; a row without a reference (unless judged by rubric) is an error naming it."""
    tasks: list[Task] = []
    seen: dict[str, int] = {}
    for row, rec in read_records(path, ("id", "reference")):
        where = f"{path}: row {row}"
        if _empty(rec.get("id")):
            raise DataError(f"{where}, column id: empty")
        tid = str(rec["id"]).strip()
        if tid in seen:
            raise DataError(f"{where}, column id: duplicate {tid!r} (first at row {seen[tid]})")
        seen[tid] = row
        if not _empty(rec.get("messages")):
            messages = _messages(where, rec["messages"])
        elif not _empty(rec.get("prompt")):
            messages = _user(str(rec["prompt"]))
        else:
            raise DataError(f"{where}: needs a prompt or messages")
        reference = "" if _empty(rec.get("reference")) else str(rec["reference"]).strip()
        grader = str(rec.get("grader") or "").strip().lower() or default_grader(reference)
        if grader not in GRADERS:
            raise DataError(f"{where}, column grader: {grader!r} is not one of {', '.join(GRADERS)}")
        rubric = None if _empty(rec.get("rubric")) else str(rec["rubric"])
        if not reference and not (grader == "judge" and rubric):
            raise DataError(f"{where}, column reference: empty (every task needs a reference; a judged one a rubric)")
        tests = _lines(rec.get("tests"))
        if grader == "code" and not tests:
            raise DataError(f"{where}, column tests: a code task needs unit tests (assert lines)")
        task = str(rec.get("task") or "").strip() or path.stem
        tasks.append(Task(tid, messages, reference, grader, task, tests=tests, setup=_lines(rec.get("setup")), rubric=rubric))
    if not tasks:
        raise DataError(f"{path}: no tasks")
    return tasks


def load_tasks(specs: list[str], *, seed: int = 0, default_n: int | None = None, root: Path | None = None,
               judge: bool = False) -> list[Task]:
    """Tasks from ``NAME[:N]`` built-in specs and ``FILE[:N]`` paths, in the order given; ids must be unique.

    With ``judge`` (a judge model is given), the built-in knowledge sets (SimpleQA, FRAMES) are graded by
    it, as their authors graded them; without one, by normalised containment of the reference.
    """
    tasks: list[Task] = []
    for spec in specs:
        name, n = _split(spec, default_n)
        if Path(name).is_file():
            chosen = sample(load_task_file(Path(name)), n, seed)
        elif name in BUILTIN:
            if root is None:
                from ..datasets import data_root

                root = data_root()
            chosen = sample(BUILTIN[name](root), n, seed)
            if judge and name in KNOWLEDGE:
                chosen = [replace(t, grader="judge") for t in chosen]
        elif Path(name).suffix:
            raise InputError(f"task file {name} does not exist")
        else:
            raise InputError(f"unknown task set {name!r}: not a file, and not one of {', '.join(BUILTIN)}")
        tasks.extend(chosen)
    ids = [t.id for t in tasks]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    if dupes:
        raise InputError(f"task ids occur twice: {', '.join(dupes[:5])} (list each task set once)")
    if not tasks:
        raise InputError("no tasks selected")
    return tasks


def _split(spec: str, default_n: int | None) -> tuple[str, int | None]:
    """``NAME:N`` -> (NAME, N); a spec that is an existing file keeps its colons."""
    if Path(spec).exists() or ":" not in spec:
        return spec, default_n
    name, _, count = spec.rpartition(":")
    if not count.isdigit() or int(count) == 0:
        raise InputError(f"{spec!r}: the count after ':' must be a positive integer")
    return name, int(count)

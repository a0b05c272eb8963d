"""Graders: one score in 0..1 per answer, tolerant of how a model formats it.

- ``numeric``: the final number (after "####", "the answer is", or \\boxed{}; else the last one)
  equals the reference by value: "$1,234.00" is 1234.
- ``choice``: the option letter the answer commits to.
- ``math``: \\boxed{}/"the answer is" text equal to the reference by value, else after LaTeX clean-up.
- ``exact`` / ``contains``: normalised text (case, articles, punctuation, spaces) equal to / containing it.
- ``code``: the answer's code runs the task's unit tests in a separate Python process with CPU-time,
  memory, file-size and wall-clock limits (``resource.setrlimit``), in an empty temporary folder.
- ``judge``: a portfolio model scores the answer against the reference and rubric (``judge_messages``
  builds the request, ``parse_judge_score`` reads the reply; the runner makes the call).
"""

from __future__ import annotations

import os
import re
import signal
import string
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from .tasks import Task

CODE_TIMEOUT_S = 10.0
CODE_MEMORY_MB = 512


@dataclass(frozen=True)
class Grade:
    score: float
    extracted: str | None = None  # what was read from the answer (number, letter, code outcome)


def strip_thinking(text: str) -> str:
    """The answer without <think> blocks (an unclosed block hides the rest: the model never answered)."""
    text = re.sub(r"<think>.*?</think>", "", text, flags=re.DOTALL)
    return text.split("<think>", 1)[0].strip()


# ---- numbers -----------------------------------------------------------------------------------

_NUM_RE = re.compile(r"(?<![\w.])[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?(?:/\d+(?:\.\d+)?)?|(?<![\w.])[-+]?\.\d+")
_CUES = (r"####\s*(.+)", r"answer\s+is\s*[:\-]?\s*(.+)", r"answer\s*[:\-]\s*(.+)")


def parse_number(text: str) -> Fraction | None:
    """A number written as a person would: commas, currency, %, fractions a/b, \\frac{a}{b}."""
    t = text.strip().replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").replace("\\!", "")
    t = re.sub(r"\\[dt]?frac\{([^{}]+)\}\{([^{}]+)\}", r"(\1)/(\2)", t).replace(" ", "").rstrip(".")
    t = t.replace("(", "").replace(")", "").replace(",", "")
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            return Fraction(num) / Fraction(den)
        return Fraction(t)
    except (ValueError, ZeroDivisionError):
        return None


def boxed(text: str) -> str | None:
    """The content of the last \\boxed{...}, braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def final_answer_text(text: str) -> str | None:
    """Where the model states its final answer: \\boxed{}, '####', 'the answer is', 'Answer:' (last cue wins)."""
    if (b := boxed(text)) is not None:
        return b
    for cue in _CUES:
        hits = re.findall(cue, text, flags=re.IGNORECASE)
        if hits:
            return str(hits[-1]).strip()
    return None


def extract_number(text: str) -> Fraction | None:
    cue = final_answer_text(text)
    for part in ([cue] if cue else []) + [text]:
        numbers = _NUM_RE.findall(part.replace("\\!", ""))
        if numbers:
            value = parse_number(numbers[0] if part is cue else numbers[-1])
            if value is not None:
                return value
    return None


def same_value(a: Fraction, b: Fraction, rel: float = 1e-6) -> bool:
    return abs(a - b) <= rel * max(1, abs(b))


def grade_numeric(answer: str, reference: str) -> Grade:
    ref, got = parse_number(reference), extract_number(answer)
    if ref is None or got is None:
        return Grade(0.0, None if got is None else str(got))
    return Grade(float(same_value(got, ref)), _show(got))


def _show(x: Fraction) -> str:
    return str(x.numerator) if x.denominator == 1 else f"{float(x):g}"


# ---- letters -----------------------------------------------------------------------------------

_CHOICE_CUES = (  # the answer commits explicitly: the last such statement counts (the letter upper case: "is a ...")
    r"(?i:answer\s+is)\s*:?\s*\(?\**([A-J])\b",
    r"(?i:answer)\s*:\s*\(?\**([A-J])\b",
    r"\b(?i:option|choice)\s*\(?([A-J])\b",
)
_LETTER_CUES = (  # a letter on its own: a restated option list hits every letter, so only one distinct letter counts
    r"^\s*\(?([A-J])[).:]?\s*$",
    r"^\s*\(?([A-J])[).:]\s",
    r"\(([A-J])\)",
)
LETTERS = "ABCDEFGHIJ"


def extract_choice(text: str, choices: list[str] | None = None) -> str | None:
    """The letter the answer commits to: an explicit cue, else a single letter standing alone, else the one
    option whose text (six characters or more) the answer quotes."""
    if (b := boxed(text)) is not None and re.fullmatch(r"\s*\(?([A-J])\)?\s*", b):
        return b.strip().strip("()")
    for cue in _CHOICE_CUES:
        hits = re.findall(cue, text)
        if hits:
            return str(hits[-1])
    for cue in _LETTER_CUES:
        letters = set(re.findall(cue, text, flags=re.MULTILINE))
        if len(letters) == 1:
            return letters.pop()
    said = f" {normalise(text)} "
    quoted = [LETTERS[i] for i, c in enumerate(choices or []) if len(normalise(c)) >= 6 and f" {normalise(c)} " in said]
    return quoted[0] if len(quoted) == 1 else None


def grade_choice(answer: str, reference: str, choices: list[str] | None = None) -> Grade:
    got = extract_choice(answer, choices)
    return Grade(float(got is not None and got == reference.strip().upper()[:1]), got)


# ---- text --------------------------------------------------------------------------------------

_PUNCT = str.maketrans("", "", string.punctuation)


def normalise(text: str) -> str:
    """SQuAD-style: lower case, no punctuation, no articles, single spaces."""
    text = text.lower().translate(_PUNCT)
    return " ".join(w for w in text.split() if w not in ("a", "an", "the"))


def grade_exact(answer: str, reference: str) -> Grade:
    got = final_answer_text(answer) or answer
    return Grade(float(normalise(got) == normalise(reference) or normalise(answer) == normalise(reference)), got[:200])


def grade_contains(answer: str, reference: str) -> Grade:
    ref = normalise(reference)
    return Grade(float(bool(ref) and f" {ref} " in f" {normalise(answer)} "), None)


def clean_latex(text: str) -> str:
    t = text.strip().strip("$").replace("\\left", "").replace("\\right", "").replace("\\!", "")
    t = re.sub(r"\\(?:text|mathrm|mbox)\{([^{}]*)\}", r"\1", t).replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return re.sub(r"\s+", "", t).rstrip(".")


def grade_math(answer: str, reference: str) -> Grade:
    got = final_answer_text(answer)
    if got is None:
        return Grade(0.0, None)
    a, b = parse_number(clean_latex(got)), parse_number(clean_latex(reference))
    if a is not None and b is not None:
        return Grade(float(same_value(a, b)), _show(a))
    return Grade(float(clean_latex(got) == clean_latex(reference)), got[:200])


# ---- code --------------------------------------------------------------------------------------

# Runs in the child: limits first, then the program. Passed with -c, so no preexec_fn (unsafe with threads).
_LAUNCHER = """
import resource, runpy, sys
cpu, mem = int(sys.argv[2]), int(sys.argv[3]) * 1024 * 1024
resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
sys.argv = sys.argv[1:2]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def extract_code(text: str) -> str:
    """The longest fenced code block (```python or bare ```), else the whole answer."""
    blocks = re.findall(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)```", text, flags=re.DOTALL)
    return max(blocks, key=len) if blocks else text


def run_code_tests(code: str, tests: tuple[str, ...], setup: tuple[str, ...] = (), *,
                   timeout_s: float = CODE_TIMEOUT_S, memory_mb: int = CODE_MEMORY_MB) -> Grade:
    """1.0 when the program (setup, code, tests) exits 0 within the limits; the failure's last line otherwise."""
    program = "\n".join([*setup, code, "", *tests, ""])
    with tempfile.TemporaryDirectory(prefix="calibroute-code-") as tmp:
        path = Path(tmp) / "solution.py"
        path.write_text(program, encoding="utf-8")
        cmd = [sys.executable, "-I", "-c", _LAUNCHER, str(path), str(max(1, int(timeout_s))), str(memory_mb)]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONHASHSEED": "0", "HOME": tmp}
        proc = subprocess.Popen(cmd, cwd=tmp, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, start_new_session=True)
        try:
            _, err = proc.communicate(timeout=timeout_s + 2)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            return Grade(0.0, f"timeout after {timeout_s:g}s")
        finally:
            _kill_group(proc)  # anything the program left running in its session
    if proc.returncode == 0:
        return Grade(1.0, "passed")
    if proc.returncode < 0:
        return Grade(0.0, f"killed by {signal.Signals(-proc.returncode).name} (time or memory limit)")
    lines = [line for line in err.decode("utf-8", "replace").splitlines() if line.strip()]
    return Grade(0.0, (lines[-1] if lines else f"exit status {proc.returncode}")[:200])


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()


# ---- dispatch ----------------------------------------------------------------------------------

def grade(task: Task, answer: str) -> Grade:
    """Every grader but the judge (which needs a model call: see the runner). Blocking for code."""
    text = strip_thinking(answer)
    if task.grader == "numeric":
        return grade_numeric(text, task.reference)
    if task.grader == "choice":
        return grade_choice(text, task.reference, task.extra.get("choices"))
    if task.grader == "math":
        return grade_math(text, task.reference)
    if task.grader == "exact":
        return grade_exact(text, task.reference)
    if task.grader == "contains":
        return grade_contains(text, task.reference)
    if task.grader == "code":
        return run_code_tests(extract_code(text), task.tests, task.setup)
    raise ValueError(f"grader {task.grader!r} needs a model call")


JUDGE_SYSTEM = "You grade answers strictly and fairly. You never solve the task yourself; you compare."


def judge_messages(task: Task, answer: str) -> list[dict[str, Any]]:
    """The judge's request: question, reference, rubric, the answer; a 0-10 score on the last line."""
    parts = [f"Question:\n{task.prompt}"]
    if task.reference:
        parts.append(f"Reference answer:\n{task.reference}")
    if task.rubric:
        parts.append(f"Rubric:\n{task.rubric}")
    parts.append(f"Answer to grade:\n{strip_thinking(answer)}")
    parts.append("How well does the answer to grade answer the question (agreeing with the reference and meeting the "
                 "rubric)? Give one sentence of reasons, then a last line 'Score: N' with N from 0 (wrong) to 10 (fully right).")
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n\n".join(parts)}]


def parse_judge_score(reply: str) -> float | None:
    """The judge's 'Score: N' (0..10, or N/10) as 0..1; None when it gave none."""
    hits = re.findall(r"score\s*[:=]?\s*\**\s*(\d+(?:\.\d+)?)\s*(?:/\s*(\d+))?", strip_thinking(reply), flags=re.IGNORECASE)
    if not hits:
        return None
    value, scale = hits[-1]
    top = float(scale) if scale else 10.0
    return min(1.0, max(0.0, float(value) / top)) if top > 0 else None

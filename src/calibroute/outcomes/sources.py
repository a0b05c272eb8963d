"""Loaders for the shared outcome datasets (see each folder's SOURCE.md for columns and caveats).

Each returns an ``OutcomeSet``; where a dataset lacks costs they are derived from published
per-model prices x token counts, and the set's ``notes`` say exactly how.
"""

from __future__ import annotations

import ast
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..datasets import data_root
from ..errors import DataError
from .outcome_set import OutcomeSet
from .tokens import TOKENIZER_NOTE, cost_from_tokens, count_tokens

ROUTELLM_STRONG = "gpt-4-1106-preview"
ROUTELLM_WEAK = "mistralai/Mixtral-8x7B-Instruct-v0.1"
# USD per million (input, output) tokens, from RouterArena's model_cost/cost.json
# ("gpt-4-1106-preview" and "mistralai/mixtral-8x7b-instruct").
ROUTELLM_PRICES = {ROUTELLM_STRONG: (10.0, 30.0), ROUTELLM_WEAK: (0.6, 0.6)}
MMLU_OUTPUT_TOKENS = 1  # the stored MMLU prompts end in "Answer:" and are scored on one letter
DCROUTER_OUTPUT_TOKENS = 256  # no response text in the dcrouter files: an assumed answer length


def _csv_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    csv.field_size_limit(2**31 - 1)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            yield from enumerate(csv.DictReader(fh), start=2)
    except OSError as exc:
        raise DataError(f"{path}: cannot read: {exc.strerror or exc}") from None


def _bool(path: Path, row: int, col: str, value: str | None) -> float:
    if value in ("True", "true", "1", "1.0"):
        return 1.0
    if value in ("False", "false", "0", "0.0"):
        return 0.0
    raise DataError(f"{path}: row {row}, column {col}: expected True/False, got {value!r}")


def _float(path: Path, row: int, col: str, value: str | None) -> float:
    if value is None or value.strip() == "":
        return float("nan")
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path}: row {row}, column {col}: expected a number, got {value!r}") from None


def _contaminated(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open(encoding="utf-8") as fh:
        return {json.loads(line)["eval_prompt"] for line in fh if line.strip()}


def _need(path: Path) -> Path:
    if not path.exists():
        raise DataError(f"dataset file not found: {path}")
    return path


def routellm_mmlu(root: Path) -> OutcomeSet:
    """RouteLLM's MMLU: 57 subjects, GPT-4 vs Mixtral correctness, decontaminated as RouteLLM does."""
    base = root / "routellm" / "mmlu"
    files = sorted((base / "responses").glob("mmlu_*.csv"))
    if not files:
        raise DataError(f"dataset file not found: {base / 'responses' / 'mmlu_*.csv'}")
    drop = _contaminated(base / "contaminated_prompts.jsonl")
    models = [ROUTELLM_STRONG, ROUTELLM_WEAK]
    ids, prompts, tasks, scores = [], [], [], []
    n_dropped = 0
    for path in files:
        subject = path.stem.removeprefix("mmlu_")
        for row, rec in _csv_rows(path):
            if rec["prompt"] in drop:
                n_dropped += 1
                continue
            ids.append(f"{subject}:{row - 2}")
            prompts.append(rec["prompt"])
            tasks.append(subject)
            scores.append([_bool(path, row, m, rec.get(m)) for m in models])
    tin = count_tokens(prompts).astype(np.float64)
    costs = np.stack([cost_from_tokens(ROUTELLM_PRICES[m], tin, np.full_like(tin, MMLU_OUTPUT_TOKENS)) for m in models], 1)
    notes = [
        f"dropped {n_dropped} prompts RouteLLM marks as contaminated",
        ("costs estimated: prompt tokens x price + 1 output token (no token counts in the data); "
        "prices GPT-4-1106 $10/$30, Mixtral $0.6/$0.6 per Mtok (RouterArena cost.json)"),
        TOKENIZER_NOTE,
        "no train/test split: learned strategies use k-fold cross-fitting",
    ]
    return OutcomeSet("routellm-mmlu", ids, prompts, models, np.array(scores), costs, None, tasks, notes)


def routellm_gsm8k(root: Path) -> OutcomeSet:
    """RouteLLM's GSM8K test set; output tokens counted from the stored responses."""
    base = root / "routellm" / "gsm8k"
    path = _need(base / "gsm8k_responses.csv")
    drop = _contaminated(base / "contaminated_prompts.jsonl")
    models = [ROUTELLM_STRONG, ROUTELLM_WEAK]
    ids, prompts, scores, responses = [], [], [], []
    n_dropped = 0
    for row, rec in _csv_rows(path):
        if rec["prompt"] in drop:
            n_dropped += 1
            continue
        ids.append(f"gsm8k:{row - 2}")
        prompts.append(rec["prompt"])
        scores.append([_bool(path, row, m, rec.get(m)) for m in models])
        responses.append([rec.get(f"{m}_response") or "" for m in models])
    tin = count_tokens(prompts).astype(np.float64)
    costs = np.stack(
        [cost_from_tokens(ROUTELLM_PRICES[m], tin, count_tokens([r[j] for r in responses]).astype(np.float64))
         for j, m in enumerate(models)], 1)
    notes = [
        f"dropped {n_dropped} prompts RouteLLM marks as contaminated",
        ("costs estimated: (prompt tokens, response tokens) x price; "
        "prices GPT-4-1106 $10/$30, Mixtral $0.6/$0.6 per Mtok (RouterArena cost.json)"),
        TOKENIZER_NOTE,
        "no train/test split: learned strategies use k-fold cross-validation",
    ]
    return OutcomeSet("routellm-gsm8k", ids, prompts, models, np.array(scores), costs, None, ["gsm8k"] * len(ids), notes)


ROUTERBENCH_FILES = ("arc_challenge", "mbpp", "winograde")


def _unlist(text: str) -> str:
    """RouterBench stores prompts as a stringified one-element Python list."""
    try:
        value: Any = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text
    return "\n".join(str(v) for v in value) if isinstance(value, list) else str(value)


def routerbench(root: Path) -> OutcomeSet:
    """RouterBench 0-shot ARC-C / MBPP / Winogrande as split by RouterDC; 11 models, real USD costs."""
    base = root / "routerbench_via_routerdc"
    ids: list[str] = []
    prompts, tasks, splits, scores, costs = [], [], [], [], []
    models: list[str] | None = None
    for stem in ROUTERBENCH_FILES:
        for split in ("train", "test"):
            path = _need(base / f"{stem}_{split}.csv")
            for row, rec in _csv_rows(path):
                if models is None:
                    models = [c for c in rec if c and c + "|total_cost" in rec]
                ids.append(f"{split}:{rec['sample_id']}")
                prompts.append(_unlist(rec["prompt"]))
                tasks.append(rec["eval_name"])
                splits.append(split)
                scores.append([_float(path, row, m, rec.get(m)) for m in models])
                costs.append([_float(path, row, f"{m}|total_cost", rec.get(f"{m}|total_cost")) for m in models])
    assert models is not None
    notes = ["RouterBench 0-shot subset (ARC-C, MBPP, Winogrande) with RouterDC's train/test split; costs are RouterBench's"]
    return OutcomeSet("routerbench", ids, prompts, models, np.array(scores), np.array(costs), np.array(splits), tasks, notes)


def dcrouter(root: Path) -> OutcomeSet:
    """LLMRouter's dcrouter data: 9 open models, 14 tasks; costs from NIM prices x estimated tokens."""
    base = root / "llmrouter_dcrouter"
    task_of: dict[str, str] = {}
    for name in ("default_query_train.jsonl", "default_query_test.jsonl"):
        with _need(base / "query_data" / name).open(encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    rec = json.loads(line)
                    task_of.setdefault(rec["query"], rec["task_name"])
    prices_raw = json.loads(_need(base / "llm_candidates" / "default_llm.json").read_text(encoding="utf-8"))
    data = {s: json.loads(_need(base / "dcrouter_preprocessed" / f"{s}.json").read_text(encoding="utf-8")) for s in ("train", "test")}
    test_texts = {r["question"] for r in data["test"]}
    models = list(data["test"][0]["scores"])
    ids, prompts, tasks, splits, scores = [], [], [], [], []
    n_overlap = 0
    for split in ("train", "test"):
        for i, rec in enumerate(data[split]):
            if split == "train" and rec["question"] in test_texts:
                n_overlap += 1
                continue
            ids.append(f"{split}:{i}")
            prompts.append(rec["question"])
            tasks.append(task_of.get(rec["question"], "unknown"))
            splits.append(split)
            scores.append([float(rec["scores"].get(m, np.nan)) for m in models])
    tin = count_tokens(prompts).astype(np.float64)
    tout = np.full_like(tin, DCROUTER_OUTPUT_TOKENS)
    prices = {m: (float(prices_raw[m]["input_price"]), float(prices_raw[m]["output_price"])) for m in models}
    costs = np.stack([cost_from_tokens(prices[m], tin, tout) for m in models], 1)
    notes = [
        f"dropped {n_overlap} train prompts whose text is also in the test split",
        f"costs estimated: (prompt tokens, assumed {DCROUTER_OUTPUT_TOKENS} output tokens) x NIM prices from default_llm.json",
        TOKENIZER_NOTE,
        "some near-zero scores are answer-format failures (see SOURCE.md)",
    ]
    return OutcomeSet("dcrouter", ids, prompts, models, np.array(scores), costs, np.array(splits), tasks, notes)


def routerarena(root: Path) -> OutcomeSet:
    """RouterArena sub_10: claude-3-haiku vs gemini-2.0-flash with real token usage and USD per call."""
    base = root / "routerarena_cached" / "cached_results"
    files = sorted(base.glob("*.jsonl"))
    if not files:
        raise DataError(f"dataset file not found: {base / '*.jsonl'}")
    models = [f.stem for f in files]
    by_id: dict[str, dict[str, tuple[float, float]]] = {}
    text: dict[str, str] = {}
    for j, path in enumerate(files):
        with path.open(encoding="utf-8") as fh:
            for row, line in enumerate(fh, start=1):
                try:
                    rec = json.loads(line)
                    ev = rec["evaluation_result"]
                    gid, score, cost = rec["global_index"], float(ev["score"]), float(ev["inference_cost"])
                except (ValueError, KeyError, TypeError) as exc:
                    raise DataError(f"{path}: row {row}: malformed record ({exc})") from None
                text.setdefault(gid, rec["question"])
                by_id.setdefault(gid, {})[models[j]] = (score, cost)
    ids = sorted(by_id)
    scores = np.array([[by_id[g].get(m, (np.nan, np.nan))[0] for m in models] for g in ids])
    costs = np.array([[by_id[g].get(m, (np.nan, np.nan))[1] for m in models] for g in ids])
    tasks = [g.rsplit("_", 1)[0] for g in ids]
    notes = ["RouterArena sub_10 split; not a leaderboard result (RouterArena asks not to train on it)"]
    n_out = int(((scores < 0) | (scores > 1)).sum())
    if n_out:
        scores = np.clip(scores, 0.0, 1.0)
        notes.append(f"clipped {n_out} scores outside 0..1 (RouterArena's metric can go slightly negative)")
    return OutcomeSet("routerarena", ids, [text[g] for g in ids], models, scores, costs, None, tasks, notes)


# The shared datasets by name; each loader takes the data root.
DATASETS: dict[str, Callable[[Path], OutcomeSet]] = {
    "routellm-mmlu": routellm_mmlu,
    "routellm-gsm8k": routellm_gsm8k,
    "routerbench": routerbench,
    "dcrouter": dcrouter,
    "routerarena": routerarena,
}


def load_dataset(name: str, root: Path | None = None) -> OutcomeSet:
    """One of the shared datasets by name, read in place from ``root`` (default: ``data_root()``)."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; known: {', '.join(DATASETS)}")
    return DATASETS[name](Path(root) if root is not None else data_root())

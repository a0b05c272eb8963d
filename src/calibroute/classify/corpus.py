"""The labelled prompt pool (../shared/data/prompts) as (text, label, source, group) rows.

Label mappings follow each folder's SOURCE.md. ``group`` is the unit held out together
(a BBH task, a T0 dataset, an MMLU subject, a HelloBench category...), so a test split is
never a near-copy of training. Sources with no sub-task use a prefix bucket as group: prompts
that open with the same words (a shared template) land in the same group.
"""

from __future__ import annotations

import csv
import gzip
import json
import random
import re
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import DataError

CLASSES: tuple[str, ...] = ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")
CHAT_SOURCES: tuple[str, ...] = ("arena_hard_v2", "hellobench", "expertqa", "awesome_chatgpt_prompts")


@dataclass(frozen=True)
class Example:
    text: str
    label: str
    source: str
    group: str


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{lineno}: invalid JSON: {exc.msg}") from None


def _csv(path: Path) -> Iterator[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as fh:
        yield from csv.DictReader(fh)


def _prefix_group(source: str, text: str, n_buckets: int = 12) -> str:
    """Group by the first three words: shared templates stay on one side of a split."""
    head = " ".join(normalize_key(text).split()[:3])
    return f"{source}/p{zlib.crc32(head.encode('utf-8')) % n_buckets}"


def _arena(root: Path) -> Iterator[Example]:
    for row in _jsonl(root / "arena_hard_v2" / "question.jsonl"):
        label = "OPEN_ENDED" if row["category"] == "creative_writing" else "REASONING"
        yield Example(
            row["prompt"], label, "arena_hard_v2", _prefix_group(f"arena_hard_v2/{row['subcategory']}", row["prompt"])
        )


_HELLO_CHAT = {
    **dict.fromkeys(("creative_write", "script_write", "character_creation", "continue_write"), "OPEN_ENDED"),
    **dict.fromkeys(("idea_generation", "question_generation"), "OPEN_ENDED"),
    "rewrite": "SIMPLE",
    **dict.fromkeys(("science_problem_solve", "data_analysis"), "REASONING"),
}


def _hellobench(root: Path) -> Iterator[Example]:
    base = root / "hellobench"
    for name in ("chat", "heuristic_text_generation", "open_ended_qa", "text_completion"):
        for row in _jsonl(base / f"{name}.jsonl"):
            cat = str(row["category"])
            text = row["raw_text"] if name in ("chat", "open_ended_qa") else row["instruction"]
            if name == "chat":
                label = _HELLO_CHAT.get(cat, "GENERAL")
            elif name == "open_ended_qa":
                label = "GENERAL"
            elif name == "text_completion":
                label = "SIMPLE" if cat == "style_transfer" else "OPEN_ENDED"
            else:
                label = "OPEN_ENDED"
            yield Example(str(text), label, "hellobench", f"hellobench/{name}/{cat}")


_EXPERT_TYPES = {
    "directed question that has a single unambiguous answer": "SIMPLE",
    "advice or suggestions on how to approach a problem": "OPEN_ENDED",
    "request for opinion on a topic": "OPEN_ENDED",
}


def _expertqa(root: Path) -> Iterator[Example]:
    for row in _jsonl(root / "expertqa" / "r1_data_anon.jsonl"):
        meta = row.get("metadata") or {}
        if isinstance(meta, str):
            meta = json.loads(meta)
        types = [t.strip().lower() for t in str(meta.get("question_type", "")).split("|") if t.strip()]
        labels = {_EXPERT_TYPES.get(t, "GENERAL") for t in types} or {"GENERAL"}
        label = labels.pop() if len(labels) == 1 else "GENERAL"
        yield Example(row["question"], label, "expertqa", f"expertqa/{meta.get('field', '?')}")


def _simple_rows(root: Path) -> Iterator[Example]:
    for row in _csv(root / "awesome_chatgpt_prompts" / "prompts.csv"):
        yield Example(row["prompt"], "OPEN_ENDED", "awesome_chatgpt_prompts", _prefix_group("awesome", row["act"], 8))
    for split in ("train", "test"):
        for row in _csv(root / "banking77" / f"{split}.csv"):
            yield Example(row["text"], "SIMPLE", "banking77", f"banking77/{row['category']}")
    for split in ("train", "test"):
        for row in _jsonl(root / "gsm8k" / f"{split}.jsonl"):
            yield Example(row["question"], "REASONING", "gsm8k", _prefix_group("gsm8k", row["question"], 8))
    for row in _jsonl(root / "humaneval" / "HumanEval.jsonl.gz"):
        yield Example(row["prompt"], "REASONING", "humaneval", _prefix_group("humaneval", row["prompt"], 4))
    mbpp = json.loads((root / "mbpp" / "sanitized-mbpp.json").read_text(encoding="utf-8"))
    for row in mbpp:
        yield Example(row["prompt"], "REASONING", "mbpp", _prefix_group("mbpp", row["prompt"], 6))
    for name in ("writing_prompts_train_subset", "test"):
        for row in _csv(root / "writingprompts" / f"{name}.csv"):
            text = re.sub(r"^\s*(\[\s*\w+\s*\]\s*)+", "", row["prompt"]).strip()
            yield Example(text, "OPEN_ENDED", "writingprompts", _prefix_group("writingprompts", text, 6))


def _bbh(root: Path) -> Iterator[Example]:
    for path in sorted((root / "bbh").glob("*.json")):
        for ex in json.loads(path.read_text(encoding="utf-8"))["examples"]:
            yield Example(ex["input"], "REASONING", "bbh", f"bbh/{path.stem}")


_MMLU_SIMPLE = {
    "astronomy", "college_biology", "high_school_biology", "conceptual_physics",
    "computer_security", "electrical_engineering", "machine_learning",
}  # fmt: skip


def _qwen(root: Path) -> Iterator[Example]:
    base = root / "qwen25_math_eval"
    for row in _jsonl(base / "mmlu_stem" / "test.jsonl"):
        choices = "\n".join(f"{'ABCD'[i]}. {c}" for i, c in enumerate(row.get("choices", [])[:4]))
        label = "SIMPLE" if row["type"] in _MMLU_SIMPLE else "REASONING"
        yield Example(f"{row['question']}\n{choices}".strip(), label, "qwen25_math_eval", f"mmlu/{row['type']}")
    for row in _jsonl(base / "college_math" / "test.jsonl"):
        yield Example(row["question"], "REASONING", "qwen25_math_eval", f"college_math/{row['data_topic']}")
    for row in _jsonl(base / "olympiadbench" / "test.jsonl"):
        text = f"{row.get('context') or ''}\n{row['question']}".strip()
        yield Example(text, "REASONING", "qwen25_math_eval", f"olympiad/{row['subfield']}")
    for row in _jsonl(base / "svamp" / "test.jsonl"):
        yield Example(f"{row['Body']} {row['Question']}", "REASONING", "qwen25_math_eval", f"svamp/{row['Type']}")
    for row in _jsonl(base / "aqua" / "test.jsonl"):
        opts = " ".join(row.get("options", []))
        yield Example(f"{row['question']}\n{opts}".strip(), "REASONING", "qwen25_math_eval", "aqua")


_T0_OPEN = (
    "generate_story",
    "spice_up_story",
    "write_an_article",
    "expand_reverse_task",
    "build_story_around_qa",
    "generate_review",
)
_T0_DATASETS = (
    "adversarial_qa", "ag_news", "amazon_polarity", "app_reviews", "cnn_dailymail", "commonsense_qa", "cosmos_qa",
    "dbpedia_14", "dream", "duorc", "gigaword", "glue_mrpc", "glue_qqp", "imdb", "kilt_tasks_hotpotqa", "multi_news",
    "qasc", "quarel", "quartz", "ropes", "rotten_tomatoes", "sciq", "social_i_qa", "wiki_hop", "wiki_qa",
)  # fmt: skip


def _t0(root: Path) -> Iterator[Example]:
    for path in sorted((root / "t0_p3_templates").glob("*.jsonl")):
        label = "OPEN_ENDED" if any(k in path.stem for k in _T0_OPEN) else "SIMPLE"
        dataset = next((d for d in _T0_DATASETS if path.stem.startswith(d)), path.stem)
        for row in _jsonl(path):
            yield Example(row["prompt"], label, "t0_p3_templates", f"t0/{dataset}")


LOADERS = (_arena, _hellobench, _expertqa, _simple_rows, _bbh, _qwen, _t0)


def normalize_key(text: str) -> str:
    """Lower-case, punctuation stripped, whitespace collapsed: the near-duplicate key."""
    return " ".join(re.sub(r"[^\w\s]", " ", text.lower()).split())


def load_pool(root: Path) -> list[Example]:
    """Every labelled prompt under ``root`` (the prompts folder), near-duplicates removed."""
    if not root.is_dir():
        raise DataError(f"prompt pool not found: {root}")
    seen: set[str] = set()
    rows: list[Example] = []
    try:
        for loader in LOADERS:
            for ex in loader(root):
                key = normalize_key(ex.text)
                if key and key not in seen:
                    seen.add(key)
                    rows.append(ex)
    except (OSError, KeyError, TypeError) as exc:
        raise DataError(f"cannot read prompt pool under {root}: {exc!r}") from None
    return rows


def balance(rows: list[Example], cap: int, seed: int = 0) -> list[Example]:
    """At most ``cap`` rows per (source, label), drawn round-robin across its groups."""
    rng = random.Random(seed)
    by_key: dict[tuple[str, str], dict[str, list[Example]]] = defaultdict(lambda: defaultdict(list))
    for ex in rows:
        by_key[(ex.source, ex.label)][ex.group].append(ex)
    out: list[Example] = []
    for key in sorted(by_key):
        groups = [by_key[key][g] for g in sorted(by_key[key])]
        for g in groups:
            rng.shuffle(g)
        picked: list[Example] = []
        depth = 0
        while len(picked) < cap and any(depth < len(g) for g in groups):
            picked.extend(g[depth] for g in groups if depth < len(g))
            depth += 1
        out.extend(picked[:cap])
    return out


def grouped_split(
    rows: list[Example], test_share: float = 0.25, seed: int = 0, count_shared: bool = False
) -> tuple[list[Example], list[Example]]:
    """Whole groups go to test; every (source, label) with 2+ groups gives some groups to test.

    Each (source, label) draws ``test_share`` of its groups independently, so a source whose groups
    mix labels (ExpertQA fields) ends up with more than that share held out. ``count_shared`` (a
    diagnostic, not the shipped split) lets a group already held out for one label count towards
    the quota of every label it covers, which holds such sources out at about ``test_share``.
    """
    rng = random.Random(seed)
    by_key: dict[tuple[str, str], list[str]] = defaultdict(list)
    for ex in rows:
        if ex.group not in by_key[(ex.source, ex.label)]:
            by_key[(ex.source, ex.label)].append(ex.group)
    test_groups: set[str] = set()
    for key in sorted(by_key):
        groups = sorted(by_key[key])
        if len(groups) < 2:
            continue
        rng.shuffle(groups)
        want = max(1, round(len(groups) * test_share))
        if count_shared:
            want -= sum(g in test_groups for g in groups)
            groups = [g for g in groups if g not in test_groups]
        test_groups.update(groups[: max(0, want)])
    train = [ex for ex in rows if ex.group not in test_groups]
    test = [ex for ex in rows if ex.group in test_groups]
    return train, test

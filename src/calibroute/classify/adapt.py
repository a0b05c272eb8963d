"""Adapt the shipped encoder classifier to a team's own labelled traffic, without torch and without our data.

The encoder stays frozen; only its linear head moves. The new head minimises the cross-entropy on the
team's rows plus an L2 pull towards the shipped (calibrated) head, so a few dozen labels fix the
kinds of request they show and leave the rest of the traffic where the shipped model put it. The
strength of the pull is chosen by cross-validation on the team's rows when there are enough of them.
Writes a head file (``.npz``) that the portfolio selects with ``routing.classifier_head``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..conversation import Turn, turn_from_messages
from ..errors import DataError, InputError
from .corpus import CLASSES
from .encoder import EncoderHead, EncoderTaskClassifier
from .linear import softmax

PULL_GRID: tuple[float, ...] = (0.3, 1.0, 3.0, 10.0)  # L2 strength towards the shipped head, per row of data
DEFAULT_PULL = 1.0
MIN_ROWS_FOR_CV = 40


def read_labelled(path: Path) -> list[tuple[Turn, str]]:
    """``prompt`` or ``messages`` + ``task_class`` records (JSONL, CSV or Parquet); errors name the row."""
    from ..tabular import read_records

    rows: list[tuple[Turn, str]] = []
    for row_no, rec in read_records(path, ("task_class",)):
        label = str(rec.get("task_class", "")).strip().upper()
        if label not in CLASSES:
            raise DataError(f"{path}: row {row_no}: task_class: got {rec.get('task_class')!r}, expected one of {', '.join(CLASSES)}")
        prompt, messages = rec.get("prompt"), rec.get("messages")
        try:
            if isinstance(prompt, str) and prompt.strip():
                turn = Turn(prompt)
            elif messages is not None:
                turn = turn_from_messages(messages)
            else:
                raise InputError("expected a non-empty string 'prompt' or a 'messages' list")
        except InputError as exc:
            raise DataError(f"{path}: row {row_no}: {exc}") from None
        if not turn.text.strip():
            raise DataError(f"{path}: row {row_no}: empty request")
        rows.append((turn, label))
    if not rows:
        raise DataError(f"{path}: no labelled rows")
    return rows


def _fit(
    x: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: np.ndarray, pull: float, rows: tuple[np.ndarray, np.ndarray]
) -> tuple[np.ndarray, np.ndarray]:
    """Minimise mean cross-entropy + pull/2 * |theta - theta0|^2 (L-BFGS on 4 x (dim + 1) numbers).

    ``rows`` = (scale, offset): row i's logits are ``scale[i] * (x[i] @ w + b) + offset[i]`` (temperatures and the
    fixed lexical logits of the head being adapted)."""
    from scipy.optimize import minimize

    n, k = x.shape[0], w0.shape[1]
    scale, offset = rows
    theta0 = np.concatenate([w0.ravel(), b0])
    onehot = np.eye(k)[y]

    def loss(theta: np.ndarray) -> tuple[float, np.ndarray]:
        w, b = theta[:-k].reshape(w0.shape), theta[-k:]
        p = softmax(scale[:, None] * (x @ w + b) + offset)
        diff = theta - theta0
        value = -np.mean(np.log(p[np.arange(n), y] + 1e-12)) + pull / 2 * float(diff @ diff)
        g = (p - onehot) * scale[:, None] / n
        grad = np.concatenate([(x.T @ g).ravel(), g.sum(0)]) + pull * diff
        return float(value), grad

    res = minimize(loss, theta0, jac=True, method="L-BFGS-B", options={"maxiter": 500})
    return res.x[:-k].reshape(w0.shape).astype(np.float32), res.x[-k:].astype(np.float32)


def _cv_pull(
    x: np.ndarray, y: np.ndarray, w0: np.ndarray, b0: np.ndarray, rows: tuple[np.ndarray, np.ndarray], folds: int = 5
) -> float:
    """The pull with the lowest held-out log-loss over ``folds`` stable folds of the team's rows."""
    fold = np.arange(y.size) % folds
    scale, offset = rows
    best, best_nll = DEFAULT_PULL, np.inf
    for pull in PULL_GRID:
        nll = 0.0
        for f in range(folds):
            fit, held = fold != f, fold == f
            w, b = _fit(x[fit], y[fit], w0, b0, pull, (scale[fit], offset[fit]))
            p = softmax(scale[held, None] * (x[held] @ w + b) + offset[held])
            nll -= float(np.log(p[np.arange(p.shape[0]), y[held]] + 1e-12).sum())
        if nll < best_nll:
            best, best_nll = pull, nll
    return best


def adapt_head(
    classifier: EncoderTaskClassifier,
    rows: Sequence[tuple[Turn, str]],
    pull: float | None = None,
    progress: Callable[[str], None] = lambda _m: None,
) -> EncoderHead:
    """A new head for ``classifier``'s encoder, fitted to ``rows`` and anchored to its current head."""
    head = classifier.head
    progress(f"encoding {len(rows)} labelled requests")
    turns = [turn for turn, _ in rows]
    x = classifier.encoder.encode(turns).astype(np.float64)
    y = np.asarray([head.classes.index(label) for _, label in rows], dtype=np.int64)
    # The current head's calibrated logits are the prior: weights divided by one temperature t, each row's logits
    # rescaled to its own temperature, the lexical logits (fixed) added where they apply.
    lexical = classifier.lexical_logits(turns)
    mixed = np.zeros(y.size, dtype=bool) if lexical is None else lexical[1]
    t = head.mixed_temperature if lexical is not None else head.temperature
    w0, b0 = head.w.astype(np.float64) / t, head.b.astype(np.float64) / t
    scale = np.where(mixed, t / head.mixed_temperature, t / head.temperature)
    offset = np.zeros((y.size, w0.shape[1])) if lexical is None else np.where(
        mixed[:, None], head.lexical_weight / head.mixed_temperature * lexical[0].astype(np.float64), 0.0)  # fmt: skip
    if pull is None:
        pull = _cv_pull(x, y, w0, b0, (scale, offset)) if y.size >= MIN_ROWS_FOR_CV else DEFAULT_PULL
    progress(f"fitting the head (pull {pull})")
    w, b = _fit(x, y, w0, b0, pull, (scale, offset))
    meta = dict(head.meta, adapted={"rows": int(y.size), "pull": pull, "per_class": {c: int((y == i).sum()) for i, c in enumerate(head.classes)}})
    return EncoderHead(list(head.classes), w, b, head.temperature / t, meta, head.lexical_weight / t, head.mixed_temperature / t)


def write_adapted_head(
    classifier: EncoderTaskClassifier, extra: Sequence[Path], out: Path, progress: Callable[[str], None] = lambda _m: None
) -> Path:
    rows = [row for path in extra for row in read_labelled(path)]
    head = adapt_head(classifier, rows, progress=progress)
    path = out if out.suffix == ".npz" else out / "classifier-encoder-head.npz"
    head.save(path)
    EncoderHead.load(path)  # fail now, not at serve time
    return path

"""Task classifiers and difficulty estimators, loaded by name from a plain registry.

Adding a classifier means one module plus one line in ``CLASSIFIERS``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from importlib import import_module

from ..errors import ArtifactError
from .base import Classifier, DifficultyEstimator
from .examples import ExampleMatcher, matcher_from_settings

# name -> "module:factory"; factories take no arguments and load shipped artifacts.
CLASSIFIERS: dict[str, str] = {
    "default": ".encoder:encoder",
    "lexical": ".linear:lexical",
    "embedding": ".linear:embedding",
    "encoder": ".encoder:encoder",
}
DIFFICULTY: dict[str, str] = {
    "default": ".difficulty:default",
}


def _resolve(table: dict[str, str], kind: str, name: str) -> Callable[[], object]:
    try:
        target = table[name]
    except KeyError:
        known = ", ".join(sorted(table)) or "none registered"
        raise ArtifactError(f"unknown {kind} {name!r}; known: {known}") from None
    module, _, attr = target.partition(":")
    factory: Callable[[], object] = getattr(import_module(module, __name__), attr)
    return factory


@cache
def load_classifier(name: str = "default") -> Classifier:
    clf = _resolve(CLASSIFIERS, "classifier", name)()
    assert isinstance(clf, Classifier)
    return clf


@cache
def load_difficulty(name: str = "default") -> DifficultyEstimator:
    est = _resolve(DIFFICULTY, "difficulty estimator", name)()
    assert isinstance(est, DifficultyEstimator)
    return est


__all__ = [
    "CLASSIFIERS",
    "DIFFICULTY",
    "Classifier",
    "DifficultyEstimator",
    "ExampleMatcher",
    "load_classifier",
    "load_difficulty",
    "matcher_from_settings",
]

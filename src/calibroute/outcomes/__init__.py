"""Per-prompt outcomes of several models: the data model, its loaders and its writer.

Below ``evaluate/``, ``classify/`` and the shoot-out, and importing none of them: estimators,
the evaluation harness and calibration all read what the shoot-out writes.
"""

from __future__ import annotations

from .format import load_outcomes_file
from .outcome_set import OutcomeSet
from .sources import DATASETS, load_dataset
from .writer import OutcomeRow, write_outcomes

__all__ = ["DATASETS", "OutcomeRow", "OutcomeSet", "load_dataset", "load_outcomes_file", "write_outcomes"]

"""Write a calibrated escalation threshold into a portfolio file, keeping the rest of it as written.

The ``routing.escalation`` mapping is replaced in the text (comments and layout elsewhere stay);
where the file has none, the whole document is re-dumped. Either way the result is validated
with ``parse_portfolio`` before anything is written, so a bad edit never lands. A missing file
starts from the built-in default portfolio.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .config import DEFAULT_PORTFOLIO, Portfolio, parse_portfolio
from .errors import ConfigError

HEADER_PREFIX = "# routing.escalation.threshold calibrated by:"


def _escalation_node(text: str) -> yaml.MappingNode | None:
    """The YAML node of ``routing.escalation``, whose text span the edit replaces."""
    node: Any = yaml.compose(text)
    for name in ("routing", "escalation"):
        if not isinstance(node, yaml.MappingNode):
            return None
        node = next((v for k, v in node.value if k.value == name), None)
    return node if isinstance(node, yaml.MappingNode) else None


def with_threshold(text: str, threshold: float, source: str, base_dir: Path | None = None) -> tuple[str, Portfolio]:
    """The portfolio text with ``routing.escalation.threshold`` set; other escalation keys are kept."""
    data: Any = yaml.safe_load(text)
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: expected a mapping with 'models' and 'routes' at the top level")
    routing = data.setdefault("routing", {}) or {}
    escalation = dict(routing.get("escalation") or {})
    escalation["threshold"] = round(float(threshold), 6)
    node = _escalation_node(text)
    if node is not None:
        flow = yaml.safe_dump(escalation, default_flow_style=True, sort_keys=False).strip()
        start, end = node.start_mark.index, node.end_mark.index
        tail = "" if node.flow_style else "\n" + " " * node.end_mark.column
        new_text = text[:start] + flow + tail + text[end:]
    else:
        data["routing"] = {**routing, "escalation": escalation}
        new_text = yaml.safe_dump(data, sort_keys=False)
    portfolio = parse_portfolio(new_text, source, base_dir)
    if portfolio.routing.escalation.threshold != escalation["threshold"]:  # the text edit went wrong: re-dump
        data["routing"] = {**routing, "escalation": escalation}
        new_text = yaml.safe_dump(data, sort_keys=False)
        portfolio = parse_portfolio(new_text, source, base_dir)
    return new_text, portfolio


def write_threshold(path: Path, threshold: float, header: str = "") -> Portfolio:
    """Set the escalation threshold in ``path`` (created from the built-in default when missing)."""
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else (
            resources.files("calibroute.data").joinpath(DEFAULT_PORTFOLIO).read_text("utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {getattr(exc, 'strerror', None) or exc}") from None
    new_text, portfolio = with_threshold(text, threshold, str(path), path.parent)
    if header:  # one provenance line at the top, replaced on every calibration
        kept = [ln for ln in new_text.splitlines(keepends=True) if not ln.startswith(HEADER_PREFIX)]
        new_text = f"{HEADER_PREFIX} {header}\n" + "".join(kept)
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(new_text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write: {exc.strerror or exc}") from None
    return portfolio

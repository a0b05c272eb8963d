"""``serve --workers``: the multiprocess metrics directory is fresh for every run."""

from __future__ import annotations

from pathlib import Path

import pytest

from calibroute.gateway.workers import MULTIPROC_ENV, prepare_multiprocess_dir


def test_the_operators_metrics_directory_is_emptied_of_a_previous_runs_values(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    stale = tmp_path / "metrics" / "counter_4242.db"
    stale.parent.mkdir()
    stale.write_bytes(b"old counts")
    (stale.parent / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(stale.parent))
    assert prepare_multiprocess_dir() is None  # the operator's: not removed at exit
    assert not stale.exists() and (stale.parent / "keep.txt").exists()


def test_without_a_directory_a_private_one_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "")  # restored (to unset) after the test, whatever prepare sets
    made = prepare_multiprocess_dir()
    try:
        assert made is not None and made.is_dir() and not any(made.iterdir())
        import os

        assert os.environ[MULTIPROC_ENV] == str(made)
    finally:
        if made is not None:
            made.rmdir()

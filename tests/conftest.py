import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # tests/servers.py and other shared test helpers

import pytest  # noqa: E402

from calibroute import classify  # noqa: E402


@pytest.fixture
def stub_estimators(monkeypatch):
    """Route with the deterministic stand-ins in tests/stubs.py through the real registry."""
    monkeypatch.setitem(classify.CLASSIFIERS, "default", "stubs:KeywordClassifier")
    monkeypatch.setitem(classify.DIFFICULTY, "default", "stubs:LengthDifficulty")
    classify.load_classifier.cache_clear()
    classify.load_difficulty.cache_clear()
    yield
    classify.load_classifier.cache_clear()
    classify.load_difficulty.cache_clear()

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


@pytest.fixture(scope="module")
def servers():
    """The fake OpenAI-protocol upstreams of tests/fake_backend.py, served once per test module."""
    from fake_backend import serve_models, standard_fakes

    fakes = standard_fakes()
    with serve_models(*fakes.values()) as urls:
        yield fakes, urls


@pytest.fixture
def fakes(servers):
    """The fake upstreams, their counters and faults reset (for tests that build their own gateway)."""
    from fake_backend import reset

    reset(servers[0])
    return servers[0]


@pytest.fixture
def gw(servers):
    """A real gateway in front of the fake upstreams, their counters reset."""
    from fake_backend import gateway_stack, reset

    fakes, urls = servers
    reset(fakes)
    with gateway_stack(fakes, urls) as stack:
        yield stack


@pytest.fixture
def client(gw):
    """The official openai client pointed at the gateway, no client-side retries."""
    import openai

    with openai.OpenAI(base_url=gw.v1, api_key="unused", max_retries=0) as c:
        yield c

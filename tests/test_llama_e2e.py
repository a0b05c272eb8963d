"""A real small LLM behind the gateway: llama.cpp's llama-server with SmolLM2-135M-Instruct.

Needs ``CALIBROUTE_LLAMA_SERVER`` (the llama-server binary) and ``CALIBROUTE_LLAMA_MODELS``
(a directory with the GGUF named in examples/local-llama.yaml); both are set by
``scripts/install-llama-server.sh`` via .ci/setup.d/llama.sh in CI. Without them every test
here skips with the reason. The server runs on 127.0.0.1 at a free port in its own process
group, which is always killed at the end.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
import yaml
from servers import free_port, serve_in_thread

from calibroute.config import TASK_CLASSES, parse_portfolio
from calibroute.gateway import GatewaySettings, create_app

pytestmark = pytest.mark.llama

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "local-llama.yaml"
EXAMPLE_URL = "http://127.0.0.1:8081/v1"  # where examples/local-llama.yaml expects llama-server
MODEL = "smollm2-135m"  # the portfolio's model name
QUESTION = [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]
MAX_TOKENS = 24
START_TIMEOUT_S = 60.0
# One thread by default: on a shared 2-core machine `-t 2` was 5-50x slower whenever another process
# held a core (llama.cpp's threads spin at every barrier); see docs/local-backend.md.
THREADS = os.environ.get("CALIBROUTE_LLAMA_THREADS", "1")


def _served_model_id() -> str:
    spec = yaml.safe_load(EXAMPLE.read_text("utf-8"))
    return next(m["backend"]["served_model"] for m in spec["models"] if m["name"] == MODEL)


def _installed() -> tuple[Path, Path]:
    """The binary and models dir from the environment, or skip saying what is missing."""
    how = "run scripts/install-llama-server.sh and export CALIBROUTE_LLAMA_SERVER / CALIBROUTE_LLAMA_MODELS"
    binary, models = os.environ.get("CALIBROUTE_LLAMA_SERVER"), os.environ.get("CALIBROUTE_LLAMA_MODELS")
    if not binary or not models:
        pytest.skip(f"llama-server not configured ({how})")
    if not os.access(binary, os.X_OK):
        pytest.skip(f"CALIBROUTE_LLAMA_SERVER={binary} is not an executable file ({how})")
    gguf = Path(models) / f"{_served_model_id()}.gguf"
    if not gguf.is_file():
        pytest.skip(f"{gguf} is missing ({how})")
    return Path(binary), Path(models)


@dataclass
class Llama:
    url: str  # http://127.0.0.1:PORT
    model_id: str

    @property
    def v1(self) -> str:
        return self.url + "/v1"


def _wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited with {proc.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if httpx.get(url + "/health", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"llama-server not healthy after {START_TIMEOUT_S:.0f}s:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server and the model instances it spawned (its own process group)."""
    for sig, wait_s in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
            return
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def llama(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Llama]:
    binary, models = _installed()
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "llama-server.log"
    cmd = [str(binary), "--host", "127.0.0.1", "--port", str(port), "--models-dir", str(models), "-t", THREADS, "-c", "2048"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_healthy(proc, url, log)
        yield Llama(url, _served_model_id())
    finally:
        _stop(proc)


def ask_directly(llama: Llama, **extra: object) -> dict:
    body = {"model": llama.model_id, "messages": QUESTION, "max_tokens": MAX_TOKENS, "temperature": 0, **extra}
    r = httpx.post(llama.v1 + "/chat/completions", json=body, timeout=120.0)
    r.raise_for_status()
    return r.json()


# -- llama-server itself, as the example portfolio expects it --------------------------------
def test_llama_server_lists_the_packaged_model_under_the_portfolio_id(llama):
    ids = [m["id"] for m in httpx.get(llama.v1 + "/models", timeout=10.0).json()["data"]]
    assert llama.model_id in ids


def test_llama_server_answers_an_openai_chat_request(llama):
    reply = ask_directly(llama)
    text = reply["choices"][0]["message"]["content"]
    assert text.strip()
    assert 0 < reply["usage"]["completion_tokens"] <= MAX_TOKENS
    assert reply["usage"]["prompt_tokens"] > 5


# -- the gateway in front of it -------------------------------------------------------------
@dataclass
class Gateway:
    v1: str
    ledger: Path


@pytest.fixture
def gateway(llama, tmp_path) -> Iterator[Gateway]:
    text = EXAMPLE.read_text("utf-8")
    assert EXAMPLE_URL in text
    config = tmp_path / "local-llama.yaml"
    config.write_text(text.replace(EXAMPLE_URL, llama.v1), "utf-8")
    ledger = tmp_path / "ledger.db"
    app = create_app(GatewaySettings(config=str(config), ledger=str(ledger), retries=0))
    with serve_in_thread(app) as url:
        yield Gateway(url + "/v1", ledger)


@pytest.fixture
def client(gateway) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=gateway.v1, api_key="unused", max_retries=0, timeout=120.0) as c:
        yield c


def route_budget(task_class: str) -> str:
    return parse_portfolio(EXAMPLE.read_text("utf-8")).routes[task_class].budget.describe()  # type: ignore[index]


def test_gateway_relays_the_model_answer_with_usage_and_routing_headers(llama, gateway, client):
    direct = ask_directly(llama)["choices"][0]["message"]["content"]
    raw = client.chat.completions.with_raw_response.create(
        model="calibroute-simple", messages=QUESTION, max_tokens=MAX_TOKENS, temperature=0)
    reply = raw.parse()
    assert reply.choices[0].message.content == direct  # greedy decoding: the same text as asked directly
    assert reply.usage is not None and reply.usage.prompt_tokens > 5
    assert 0 < reply.usage.completion_tokens <= MAX_TOKENS
    assert raw.headers["x-calibroute-model"] == MODEL
    assert raw.headers["x-calibroute-class"] == "SIMPLE"
    assert raw.headers["x-calibroute-rule"] == "hint_class"
    assert raw.headers["x-calibroute-budget"].startswith(f"max {MAX_TOKENS} tok")
    assert float(raw.headers["x-calibroute-cost-usd"]) > 0


def test_gateway_streams_the_model_answer_with_a_usage_chunk(llama, gateway, client):
    raw = client.chat.completions.with_raw_response.create(
        model="auto", messages=QUESTION, max_tokens=MAX_TOKENS, temperature=0, stream=True,
        stream_options={"include_usage": True})
    assert raw.headers["content-type"].startswith("text/event-stream")
    assert raw.headers["x-calibroute-model"] == MODEL
    task_class = raw.headers["x-calibroute-class"]
    assert task_class in TASK_CLASSES
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    content_chunks = [c for c in chunks if c.choices and c.choices[0].delta.content]
    assert text.strip() and len(content_chunks) > 1  # really streamed, token by token
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens > 5 and 0 < usage.completion_tokens <= MAX_TOKENS


def test_gateway_uses_the_route_budget_when_the_client_sets_none(gateway, client):
    raw = client.chat.completions.with_raw_response.create(
        model="calibroute-simple", messages=[{"role": "user", "content": "Say hello."}], temperature=0)
    assert raw.headers["x-calibroute-budget"] == route_budget("SIMPLE")
    limit = parse_portfolio(EXAMPLE.read_text("utf-8")).routes["SIMPLE"].budget.max_output_tokens
    usage = raw.parse().usage
    assert usage is not None and 0 < usage.completion_tokens <= limit


def test_every_real_request_leaves_a_ledger_row_with_real_tokens(gateway, client):
    client.chat.completions.create(model="calibroute-simple", messages=QUESTION, max_tokens=8, temperature=0)
    deadline = time.monotonic() + 10
    rows: list[tuple] = []
    while time.monotonic() < deadline and not rows:
        if gateway.ledger.exists():
            with closing(sqlite3.connect(gateway.ledger)) as db:
                rows = db.execute(
                    "select status, model, task_class, prompt_tokens, completion_tokens, cost_usd from requests").fetchall()
        time.sleep(0.1)
    assert len(rows) == 1
    status, model, task_class, prompt_tokens, completion_tokens, cost = rows[0]
    assert (status, model, task_class) == ("ok", MODEL, "SIMPLE")
    assert prompt_tokens > 5 and 0 < completion_tokens <= 8 and cost > 0

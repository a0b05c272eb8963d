"""``calibroute serve`` as a user runs it: a real process, a real port, a real SQLite ledger."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import openai
from fake_backend import CONTROLS, STANDARD_ROUTES, FakeModel, portfolio_yaml, serve_models
from servers import free_port, wait_healthy
from typer.testing import CliRunner

from calibroute.cli import app

TESTS = Path(__file__).parent
# Start the real CLI with the deterministic stub estimators registered through the production registry.
LAUNCH = (
    "import sys; sys.path.insert(0, {tests!r}); from calibroute import classify; "
    "classify.CLASSIFIERS['default'] = 'stubs:KeywordClassifier'; classify.DIFFICULTY['default'] = 'stubs:LengthDifficulty'; "
    "from calibroute.cli import main; sys.argv = ['calibroute', 'serve'] + sys.argv[1:]; main()"
)


def test_serve_with_a_missing_config_is_one_error_line():
    result = CliRunner().invoke(app, ["serve", "--config", "/nonexistent/portfolio.yaml"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("error: /nonexistent/portfolio.yaml")


def test_serve_answers_openai_clients_and_writes_the_ledger(tmp_path):
    fakes = {name: FakeModel(name=name, reply=f"Hello from {name}.") for name in CONTROLS}
    with serve_models(*fakes.values()) as urls:
        config = tmp_path / "portfolio.yaml"
        config.write_text(portfolio_yaml({n: (urls[n], CONTROLS[n]) for n in CONTROLS}, STANDARD_ROUTES))
        port, ledger = free_port(), tmp_path / "ledger.db"
        cmd = [sys.executable, "-c", LAUNCH.format(tests=str(TESTS)), "--config", str(config), "--port", str(port),
               "--ledger", str(ledger), "--log-level", "warning"]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, "NO_COLOR": "1"})
        try:
            base = f"http://127.0.0.1:{port}"
            wait_healthy(base, proc, 60)  # a loaded machine: the process imports for tens of seconds
            with openai.OpenAI(base_url=base + "/v1", api_key="unused", max_retries=0) as client:
                reply = client.chat.completions.create(model="auto", messages=[{"role": "user", "content": "summarize this"}])
            assert reply.choices[0].message.content == "Hello from small."
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=20)
    assert proc.returncode in (0, -15), err.decode()  # uvicorn re-raises SIGTERM after its graceful shutdown
    assert "Traceback" not in err.decode()
    import sqlite3

    rows = sqlite3.connect(ledger).execute("select status, model, task_class from requests").fetchall()
    assert rows == [("ok", "small", "SIMPLE")]  # flushed on shutdown

"""What the gateway hands to the ledger: junk traffic does not grow it (issue 12, item 9)."""

from __future__ import annotations

import sqlite3

import httpx
import openai
import pytest
from fake_backend import reset, gateway_stack, serve_models, standard_fakes

from calibroute.ledger import open_ledger

MSG = [{"role": "user", "content": "summarize this"}]


@pytest.fixture(scope="module")
def servers():
    fakes = standard_fakes()
    with serve_models(*fakes.values()) as urls:
        yield fakes, urls


@pytest.mark.parametrize("batch_s", [0.0, 0.02])
def test_unauthenticated_rejections_write_no_rows_but_are_counted(servers, tmp_path, batch_s):
    fakes, urls = servers
    reset(fakes)
    ledger = open_ledger(tmp_path / "ledger.db", journal=True)
    try:
        _, good = ledger.create_key("team-a")
        with gateway_stack(fakes, urls, ledger=ledger, ledger_batch_s=batch_s) as stack:
            with httpx.Client(base_url=stack.v1) as http:
                for i in range(60):  # junk: no key, a made-up key, a malformed header
                    headers = [{}, {"authorization": f"Bearer crk-junk{i}"}, {"authorization": "Basic x"}][i % 3]
                    assert http.post("/chat/completions", json={"model": "small", "messages": MSG}, headers=headers).status_code == 401
                metrics = http.get(stack.url + "/metrics").text
            with openai.OpenAI(base_url=stack.v1, api_key=good, max_retries=0) as client:
                client.chat.completions.create(model="small", messages=MSG)
    finally:
        ledger.close()
    rows = sqlite3.connect(tmp_path / "ledger.db").execute("select status, http_status from requests").fetchall()
    assert rows == [("ok", 200)]
    assert 'status="rejected"} 60.0' in metrics

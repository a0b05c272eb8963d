"""The dashboard page in a real headless Chromium (Debian's package) against a gateway with a
seeded ledger: the numbers the page shows are the ledger's. Skips with a reason without Chromium."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlencode

import pytest
from dashboard_seed import SINCE, UNTIL, seed_ledger
from fake_backend import gateway_stack

from calibroute.ledger import open_ledger

CHROMIUM = os.environ.get("CALIBROUTE_TEST_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(not CHROMIUM, reason="headless Chromium not installed (run .ci/setup.d/chromium.sh)")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def chromium(url: str, profile: Path, *extra: str) -> str:
    """Run Chromium once on ``url`` with a fresh profile; its stdout (the DOM with --dump-dom)."""
    cmd = [str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=15000", *extra, url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


class _ById(HTMLParser):
    """Text content of every element with an id, from a dumped DOM."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str | None] = []
        self.text: dict[str, str] = {}
        self.body: dict[str, str] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "body":
            self.body = {k: v or "" for k, v in a.items()}
        if tag in ("br", "input", "img", "meta", "link", "rect", "line"):
            return
        self.stack.append(a.get("id"))
        if a.get("id"):
            self.text.setdefault(a["id"], "")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("br", "input", "img", "meta", "link", "rect", "line"):
            return
        if self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        for ident in self.stack:
            if ident:
                self.text[ident] += data


def parse(dom: str) -> _ById:
    p = _ById()
    p.feed(dom)
    return p


def test_page_shows_the_ledgers_numbers(tmp_path: Path, fakes, servers) -> None:
    path = str(tmp_path / "ledger.db")
    seed_ledger(path)
    ledger = open_ledger(path)
    try:
        with gateway_stack(fakes, servers[1], ledger=ledger) as stack:
            url = f"{stack.url}/ui?{urlencode({'since': SINCE, 'until': UNTIL, 'by': 'class'})}"
            dom = parse(chromium(url, tmp_path / "profile", "--dump-dom"))
    finally:
        ledger.close()
    assert dom.body.get("data-loaded") == "ok", dom.text.get("notice")
    shown = {k: re.sub(r"\s+", " ", v).strip() for k, v in dom.text.items()}
    assert shown["sum-requests"] == "5"
    assert shown["sum-cost"] == "$2.0500"
    assert shown["sum-baseline"] == "$5.5000"
    assert shown["sum-savings"] == "$3.4500"
    assert shown["sum-errors"] == "1"
    assert shown["sum-escalations"] == "1 20.0%"
    assert shown["sum-tokens"] == "15 / 120 / 60"
    flows, latency, requests = shown["flows"], shown["latency"], shown["requests"]
    assert "small-chat2100 ms300 ms" in latency and "mid-reasoner1900 ms900 ms" in latency  # model, n, p50, p95
    assert "REASONINGbig-thinker11$1.5000" in flows  # class, model, requests, fell back, spend
    assert "seed-3" in requests and "escalated to the strong model" in requests
    assert "SIMPLE" in shown["spend-groups"] and "$1.7000" in shown["spend-groups"]


def test_page_asks_for_the_token(tmp_path: Path, fakes, servers) -> None:
    ledger = open_ledger(str(tmp_path / "ledger.db"))
    try:
        with gateway_stack(fakes, servers[1], ledger=ledger, ui_token="s3cret") as stack:
            locked = parse(chromium(f"{stack.url}/ui", tmp_path / "p1", "--dump-dom"))
            opened = parse(chromium(f"{stack.url}/ui#token=s3cret", tmp_path / "p2", "--dump-dom"))
    finally:
        ledger.close()
    assert locked.body.get("data-loaded") == "error" and "ui token" in locked.text["notice"]
    assert opened.body.get("data-loaded") == "ok"

"""HTTPS upstreams: a real TLS server on 127.0.0.1 with a certificate from a private CA (trustme)."""

from __future__ import annotations

import pytest
import trustme
from fake_backend import FakeModel, stream_text, with_backend
from openai import OpenAI
from servers import serve_in_thread

from calibroute.config import ModelSpec
from calibroute.errors import BackendUnavailable

MSG = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def https_url(ca, tmp_path_factory):
    """A fake OpenAI-compatible model served over HTTPS with a certificate for 127.0.0.1."""
    d = tmp_path_factory.mktemp("tls")
    cert = ca.issue_cert("127.0.0.1")
    cert.private_key_pem.write_to_path(str(d / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(d / "cert.pem"))
    fake = FakeModel(name="m", reply="over tls")
    with serve_in_thread(fake.app(), ssl_certfile=str(d / "cert.pem"), ssl_keyfile=str(d / "key.pem")) as url:
        yield url.replace("http://", "https://")


@pytest.fixture
def trusted(ca, tmp_path, monkeypatch):
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))


def run(url: str, call):  # type: ignore[no-untyped-def]
    spec = ModelSpec.model_validate({"name": "m", "backend": {"base_url": url + "/v1", "connect_timeout_s": 5},
                                     "input_usd_per_mtok": 1, "output_usd_per_mtok": 2})
    return with_backend(spec, call)


def test_https_upstream_with_a_private_ca_in_ssl_cert_file_answers(https_url, trusted):
    data = run(https_url, lambda b: b.complete(dict(MSG)))
    assert data["choices"][0]["message"]["content"] == "over tls"


def test_https_upstream_streams(https_url, trusted):
    assert run(https_url, stream_text) == "over tls"


def test_untrusted_certificate_is_a_clear_backend_error(https_url, monkeypatch, tmp_path):
    empty = tmp_path / "empty.pem"
    empty.write_text("")
    monkeypatch.setenv("SSL_CERT_FILE", str(empty))
    monkeypatch.setenv("SSL_CERT_DIR", str(tmp_path))
    with pytest.raises(BackendUnavailable, match="TLS certificate not trusted.*SSL_CERT_FILE"):
        run(https_url, lambda b: b.complete(dict(MSG)))


def test_gateway_relays_an_https_upstream_to_the_openai_client(https_url, trusted):
    from fake_backend import MemoryLedger
    from stubs import KeywordClassifier, LengthDifficulty

    from calibroute.config import parse_portfolio
    from calibroute.gateway import GatewaySettings, create_app
    from calibroute.router import Router

    text = (f"models:\n  - {{name: m, backend: {{base_url: '{https_url}/v1'}}, input_usd_per_mtok: 1, output_usd_per_mtok: 2}}\n"
            "routes:\n" + "".join(f"  {c}: {{models: [m], budget: {{max_output_tokens: 64}}}}\n"
                                  for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")))
    portfolio = parse_portfolio(text, "tls.yaml")
    ledger = MemoryLedger()
    router = Router(portfolio, classifier=KeywordClassifier(), difficulty=LengthDifficulty())
    app = create_app(GatewaySettings(retries=0, ledger_batch_s=0.0), router=router, ledger=ledger)
    with serve_in_thread(app) as gw:
        client = OpenAI(base_url=gw + "/v1", api_key="unused", max_retries=0)
        reply = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
        client.close()
    assert reply.choices[0].message.content == "over tls"
    assert [row.model for row in ledger.rows] == ["m"]

import json

import pytest
from typer.testing import CliRunner

from calibroute.cli import app

runner = CliRunner()


@pytest.fixture(autouse=True)
def _stubs(stub_estimators):
    yield


def test_route_prints_a_readable_decision():
    result = runner.invoke(app, ["route", "Write a poem about the sea"])
    assert result.exit_code == 0, result.output
    assert "OPEN_ENDED" in result.output and "qwen3-32b" in result.output and "thinking off" in result.output


def test_route_json_for_one_prompt():
    result = runner.invoke(app, ["route", "--json", "Prove that 2 is prime"])
    data = json.loads(result.output)
    assert data["task_class"] == "REASONING" and data["budget"]["thinking"] is True


def test_batch_routes_good_lines_and_reports_bad_ones(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_bytes(
        b'{"id": 1, "prompt": "Write a story about a cat"}\n'
        b"not json\n"
        b'{"id": 2, "messages": [{"role": "user", "content": "Summarize this"}]}\n'
        b'{"id": 3, "prompt": "\xff\xfe"}\n'
        b"\n"
        b'{"id": 4}\n'
        b'{"id": 5, "prompt": ""}\n'
        b'{"id": 6, "prompt": "solve x+1=2", "domain": "creative"}\n'
        b'{"id": 7, "prompt": "hi", "model": "gpt-9"}\n'
    )
    out = tmp_path / "out.jsonl"
    result = runner.invoke(app, ["route", "--input", str(src), "--output", str(out)])
    assert result.exit_code == 1
    rows = [json.loads(l) for l in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == [1, 2, 6]
    assert {"id", "task_class", "confidence", "model", "budget"} <= rows[0].keys()
    assert rows[2]["task_class"] == "OPEN_ENDED"
    err = result.stderr
    for lineno in (2, 4, 6, 7, 9):
        assert f"line {lineno}" in err
    assert "routed 3 line(s), 5 failed" in err
    assert "Traceback" not in err


def test_batch_with_only_good_lines_exits_zero(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("\n".join(json.dumps({"id": i, "prompt": f"summarize text {i}"}) for i in range(5)))
    result = runner.invoke(app, ["route", "--input", str(src)])
    assert result.exit_code == 0
    assert len([l for l in result.stdout.splitlines() if l.startswith("{")]) == 5


@pytest.mark.parametrize(
    "args, message",
    [
        (["route", ""], "error: empty prompt"),
        (["route"], "error: give a PROMPT or --input"),
        (["route", "--input", "/nonexistent.jsonl"], "error: /nonexistent.jsonl: cannot read"),
        (["route", "--model", "gpt-9", "hi"], "error: unknown model 'gpt-9'"),
        (["route", "--domain", "cooking", "hi"], "error: unknown domain or class hint 'cooking'"),
        (["config", "check", "/nonexistent.yaml"], "error: /nonexistent.yaml: cannot read"),
    ],
)
def test_bad_input_is_one_clear_line(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stderr.strip() == result.stderr.strip().splitlines()[0]
    assert result.stderr.startswith(message)


def test_config_naming_unknown_model_fails_check(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text(
        "models:\n  - name: a\n    backend: {base_url: 'http://127.0.0.1:1/v1'}\n    input_usd_per_mtok: 1\n"
        "    output_usd_per_mtok: 1\nroutes:\n"
        + "".join(f"  {c}: {{models: [b], budget: {{max_output_tokens: 10}}}}\n" for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL"))
    )
    result = runner.invoke(app, ["config", "check", str(f)])
    assert result.exit_code == 2 and "unknown model 'b'" in result.stderr


def test_config_show_prints_effective_yaml():
    result = runner.invoke(app, ["config", "show"])
    assert result.exit_code == 0 and "min_confidence:" in result.output and "SIMPLE: 0.82" in result.output


def test_demo_routes_the_samples_and_reports_savings():
    result = runner.invoke(app, ["demo"])
    assert result.exit_code == 0, result.output
    assert "REASONING" in result.output and "OPEN_ENDED" in result.output
    assert "less)" in result.output


def test_per_class_min_confidence_config_routes_by_the_predicted_class_threshold(tmp_path):
    from importlib import resources

    import yaml

    from calibroute.config import DEFAULT_MIN_CONFIDENCE, DEFAULT_PORTFOLIO

    data = yaml.safe_load(resources.files("calibroute.data").joinpath(DEFAULT_PORTFOLIO).read_text("utf-8"))
    data["routing"]["min_confidence"] = {"SIMPLE": 0.35, "REASONING": 0.95}  # stubs: 0.9 on a keyword, SIMPLE 0.4 else
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data))
    result = runner.invoke(app, ["route", "--json", "--config", str(f), "Prove that 2 is prime"])
    data_out = json.loads(result.output)
    assert data_out["task_class"] == "GENERAL" and "0.90 < 0.95 (REASONING threshold)" in data_out["reason"]
    result = runner.invoke(app, ["route", "--json", "--config", str(f), "What time is it in Lima?"])
    assert json.loads(result.output)["task_class"] == "SIMPLE"
    result = runner.invoke(app, ["demo", "--config", str(f)])
    assert result.exit_code == 0, result.output
    expected = f"routing.min_confidence (SIMPLE 0.35, REASONING 0.95, OPEN_ENDED {DEFAULT_MIN_CONFIDENCE:.2f})"
    assert expected in " ".join(result.output.split())

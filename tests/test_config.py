from pathlib import Path

import pytest
import yaml

from calibroute.config import DEFAULT_MIN_CONFIDENCE, Budget, load_portfolio, parse_portfolio
from calibroute.errors import ConfigError, UnknownModelError

DEFAULT = Path(__file__).parents[1] / "src/calibroute/data/default_portfolio.yaml"


def default_data() -> dict:
    return yaml.safe_load(DEFAULT.read_text())


def test_builtin_default_implements_the_calibrated_strategy():
    p = load_portfolio()
    simple, reasoning = p.routes["SIMPLE"], p.routes["REASONING"]
    open_ended, general = p.routes["OPEN_ENDED"], p.routes["GENERAL"]
    assert not simple.budget.thinking and simple.budget.max_output_tokens <= 1024
    assert reasoning.budget.thinking and (reasoning.budget.thinking_budget_tokens or 0) >= 8000
    assert not open_ended.budget.thinking or (open_ended.budget.thinking_budget_tokens or 0) <= 1024
    general_model = p.model(general.models[0])
    assert general_model.active_params_b < general_model.total_params_b  # a MoE
    assert p.model(simple.models[0]).output_usd_per_mtok < p.model(reasoning.models[0]).output_usd_per_mtok


def test_error_names_file_field_and_line(tmp_path):
    text = DEFAULT.read_text().replace("output_usd_per_mtok: 0.30", "output_usd_per_mtok: -1", 1)
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_portfolio(f)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "-1" in l)
    assert f"{f}:{line}: models.1.output_usd_per_mtok" in str(err.value)


@pytest.mark.parametrize(
    "mutate, expected",
    [
        (lambda d: d["routes"]["SIMPLE"].update(models=["nope"]), "unknown model 'nope'"),
        (lambda d: d["routes"].pop("GENERAL"), "routes missing for task classes: GENERAL"),
        (lambda d: d["models"].append(dict(d["models"][0])), "duplicate model names: qwen3-4b"),
        (lambda d: d["models"][0].update(colour="red"), "models.0.colour: Extra inputs are not permitted"),
        (lambda d: d["models"][0]["backend"].update(base_url="ftp://x"), "models.0.backend.base_url"),
        (lambda d: d["aliases"].update(fast="QUICK"), "alias 'fast' -> 'QUICK'"),
        (lambda d: d["routes"]["SIMPLE"]["budget"].update(thinking_budget_tokens=600), "thinking_budget_tokens must be below"),
    ],
)
def test_invalid_portfolios_are_rejected_with_a_reason(mutate, expected):
    data = default_data()
    mutate(data)
    with pytest.raises(ConfigError, match=expected.replace("(", r"\(").replace(")", r"\)")):
        parse_portfolio(yaml.safe_dump(data), "p.yaml")


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "models: [\n", "\x00"])
def test_non_mapping_or_broken_yaml_is_a_config_error(text):
    with pytest.raises(ConfigError, match=r"^p.yaml"):
        parse_portfolio(text, "p.yaml")


def test_non_utf8_and_missing_files_are_config_errors(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"models: \xff\xfe\n")
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_portfolio(bad)
    with pytest.raises(ConfigError, match="cannot read"):
        load_portfolio(tmp_path / "missing.yaml")


def test_unknown_model_lookup_lists_known_names():
    with pytest.raises(UnknownModelError, match="known: gpt-5, gpt-oss-120b"):
        load_portfolio().model("gpt-9")


def test_budget_describe_and_cost():
    assert Budget(max_output_tokens=512).describe() == "max 512 tok, thinking off"
    spec = load_portfolio().model("gpt-5")
    assert spec.cost_usd(1_000_000, 1_000_000) == pytest.approx(11.25)
    monkey_env = "OPENAI_API_KEY"
    assert spec.backend.api_key_env == monkey_env


def test_escalation_ladder_is_a_list_and_a_string_still_works():
    data = default_data()
    data["routes"]["REASONING"]["escalate_to"] = ["qwen3-235b-a22b", "gpt-5"]
    p = parse_portfolio(yaml.safe_dump(data), "p.yaml")
    assert p.routes["REASONING"].ladder == ["gpt-oss-120b", "qwen3-235b-a22b", "gpt-5"]
    assert p.routes["SIMPLE"].ladder == ["qwen3-4b", "qwen3-30b-a3b"]  # escalate_to: a string


def test_unknown_model_in_a_ladder_names_file_line_and_rung(tmp_path):
    text = DEFAULT.read_text().replace("escalate_to: gpt-5", "escalate_to:\n      - qwen3-235b-a22b\n      - gpt-9", 1)
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_portfolio(f)
    line = next(i for i, l in enumerate(text.splitlines(), 1) if "gpt-9" in l)
    assert f"{f}:{line}: routes.REASONING.escalate_to.1: route REASONING names unknown model 'gpt-9'" in str(err.value)


@pytest.mark.parametrize("ladder", [[], ["gpt-5", "gpt-5"]])
def test_empty_or_repeating_ladders_are_rejected(ladder):
    data = default_data()
    data["routes"]["REASONING"]["escalate_to"] = ladder
    with pytest.raises(ConfigError, match="routes.REASONING.escalate_to: .*distinct models"):
        parse_portfolio(yaml.safe_dump(data), "p.yaml")


@pytest.mark.parametrize(
    "examples, extra, expected",
    [
        ({"EASY": ["Fix the grammar: he go home"]}, {}, "routing.examples.EASY: Input should be 'SIMPLE', 'REASONING'"),
        ({"SIMPLE": ["Fix the grammar: he go home", "   "]}, {}, "routing.examples.SIMPLE.1: an example must be a non-empty"),
        ({"SIMPLE": "Fix the grammar"}, {}, "routing.examples.SIMPLE: Input should be a valid list"),
        ({"SIMPLE": ["Solve 2x = 4"], "REASONING": ["solve  2x = 4"]}, {}, "is labelled both"),
        ({}, {"example_min_similarity": 0}, "routing.example_min_similarity: Input should be greater than 0"),
        ({}, {"example_min_similarity": 1.5}, "routing.example_min_similarity: Input should be less than or equal to 1"),
        ({}, {"examples_file": "nope.jsonl"}, "routing.examples_file: file not found"),
    ],
)
def test_bad_examples_are_rejected_with_file_line_and_field(tmp_path, examples, extra, expected):
    data = default_data()
    data["routing"].update(examples=examples, **extra)
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_portfolio(f)
    assert expected in str(err.value)
    assert str(err.value).startswith(f"{f}:")
    line = int(str(err.value).removeprefix(f"{f}:").split(":")[0])
    setting = str(err.value).split(": ")[1].split(".")[1]  # examples, examples_file, example_min_similarity
    setting_line = next(i for i, text in enumerate(f.read_text().splitlines(), 1) if text.startswith(f"  {setting}:"))
    assert setting_line <= line <= setting_line + 4  # the offending setting, or the offending item in it



@pytest.mark.parametrize(
    "line, expected",
    [
        ("not json", "invalid JSON"),
        ('["SIMPLE", "x"]', "expected a JSON object"),
        ('{"prompt": "", "task_class": "SIMPLE"}', "prompt: expected a non-empty string"),
        ('{"prompt": "Solve x", "task_class": "simple"}', "task_class: got 'simple', expected one of SIMPLE"),
    ],
)
def test_a_bad_examples_file_line_names_that_file_and_line(tmp_path, line, expected):
    (tmp_path / "ex.jsonl").write_text('{"prompt": "Fix: he go", "task_class": "SIMPLE"}\n\n' + line + "\n")
    data = default_data()
    data["routing"]["examples_file"] = "ex.jsonl"
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError) as err:
        load_portfolio(tmp_path / "p.yaml")
    assert f"routing.examples_file: {tmp_path / 'ex.jsonl'}: row 3: {expected}" in str(err.value)


@pytest.mark.parametrize(
    "value, expected",
    [
        ({"EASY": 0.5}, "routing.min_confidence.EASY: Input should be 'SIMPLE', 'REASONING', 'OPEN_ENDED', 'GENERAL' or 'default'"),
        ({"SIMPLE": 0.8, "REASONING": 1.5}, "routing.min_confidence.REASONING: Input should be less than or equal to 1"),
        ({"SIMPLE": "high"}, "routing.min_confidence.SIMPLE: Input should be a valid number"),
        (-0.1, "routing.min_confidence: Input should be greater than or equal to 0"),
        ("high", "routing.min_confidence: Input should be a valid number"),
    ],
)
def test_bad_min_confidence_is_rejected_with_file_line_and_field(tmp_path, value, expected):
    data = default_data()
    data["routing"] = {"escalation": {"strong_share": 0.3}, "min_confidence": value}
    f = tmp_path / "p.yaml"
    f.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ConfigError) as err:
        load_portfolio(f)
    message = str(err.value)
    assert expected in message and message.count("Input should") == 1  # one error, for the form that was written
    field = expected.split(":")[0]  # routing.min_confidence or routing.min_confidence.<KEY>
    prefix = f"    {field.split('.')[2]}:" if field.count(".") == 2 else "  min_confidence:"
    bad_line = next(i for i, text in enumerate(f.read_text().splitlines(), 1) if text.startswith(prefix))
    assert message.startswith(f"{f}:{bad_line}: ")


def test_min_confidence_accepts_one_number_or_one_per_class():
    data = default_data()
    data["routing"]["min_confidence"] = 0.6
    assert parse_portfolio(yaml.safe_dump(data)).routing.threshold_for("SIMPLE") == 0.6
    data["routing"]["min_confidence"] = {"SIMPLE": 0.8, "REASONING": 0.5, "default": 0.65}
    routing = parse_portfolio(yaml.safe_dump(data)).routing
    assert [routing.threshold_for(c) for c in ("SIMPLE", "REASONING", "OPEN_ENDED", "GENERAL")] == [0.8, 0.5, 0.65, 0.65]
    data["routing"]["min_confidence"] = {"REASONING": 0.5}
    assert parse_portfolio(yaml.safe_dump(data)).routing.threshold_for("OPEN_ENDED") == DEFAULT_MIN_CONFIDENCE

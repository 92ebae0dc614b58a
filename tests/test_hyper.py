"""Hyper-parameter search (recbole_gen.hyper): the YAML space, its checks, no eval, and real searches."""

import importlib.util
import json
import math

import pytest

from recbole_gen import hyper
from recbole_gen.config import literal

needs_hyperopt = pytest.mark.skipif(importlib.util.find_spec("hyperopt") is None, reason="pip install -e '.[hyper]'")

# What a malicious space or command line would hand an eval(); the marker file shows whether it ran.
PAYLOAD = "__import__('pathlib').Path('{marker}').touch()"


def write_space(path, text):
    path.write_text(text)
    return str(path)


def test_space_kinds_parse_convert_and_type(tmp_path):
    space = hyper.load_space(write_space(tmp_path / "space.yaml", """
learning_rate: {loguniform: [1.0e-4, 1.0e-2]}
dropout: {uniform: [0.1, 0.5]}
hidden_size: {quniform: [16, 64, 16]}
scale: {quniform: [0.5, 2.5, 0.5]}
loss_type: {choice: [CE, BPR]}
"""))
    assert space["loss_type"] == {"choice": ["CE", "BPR"]}
    params = hyper.hyperopt_params(space)
    # hyperopt's loguniform takes log bounds; the file holds the values themselves
    assert params["loguniform"]["learning_rate"] == pytest.approx([math.log(1e-4), math.log(1e-2)])
    assert params["uniform"] == {"dropout": [0.1, 0.5]}
    assert params["quniform"] == {"hidden_size": [16, 64, 16], "scale": [0.5, 2.5, 0.5]}
    assert params["choice"] == {"loss_type": ["CE", "BPR"]}
    # hyperopt draws quniform as floats; integer steps must reach the config as ints, others stay floats
    typed = hyper.typed_params({"hidden_size": 48.0, "scale": 1.5, "dropout": 0.2}, space)
    assert typed == {"hidden_size": 48, "scale": 1.5, "dropout": 0.2}
    assert isinstance(typed["hidden_size"], int) and isinstance(typed["scale"], float)


@pytest.mark.parametrize("text, message", [
    ("[learning_rate]", "non-empty mapping"),
    ("{}", "non-empty mapping"),
    ("lr: 0.01", "parameter 'lr' is 0.01; accepted: {choice"),
    ("lr: {normal: [0, 1]}", "parameter 'lr' is {'normal'"),
    ("lr: {choice: [1], uniform: [0, 1]}", "parameter 'lr' is"),
    ("lr: {choice: []}", "parameter 'lr': choice needs a non-empty list"),
    ("lr: {choice: 0.01}", "parameter 'lr': choice needs a non-empty list"),
    ("lr: {uniform: [0.1]}", "parameter 'lr': uniform needs 2 numbers"),
    ("lr: {uniform: [0.1, high]}", "parameter 'lr': uniform needs 2 numbers"),
    ("lr: {uniform: [true, 2]}", "parameter 'lr': uniform needs 2 numbers"),
    ("lr: {uniform: [0.5, 0.1]}", "parameter 'lr': uniform needs low < high"),
    ("lr: {loguniform: [0, 0.1]}", "parameter 'lr': loguniform needs 0 < low"),
    ("lr: {quniform: [8, 64]}", "parameter 'lr': quniform needs 3 numbers"),
    ("lr: {quniform: [8, 64, 0]}", "parameter 'lr': quniform needs a step q > 0"),
])
def test_bad_space_is_refused_naming_the_parameter(tmp_path, text, message):
    path = write_space(tmp_path / "bad.yaml", text)
    with pytest.raises(ValueError, match="search space .*bad.yaml") as err:
        hyper.load_space(path)
    assert message in str(err.value)


@needs_hyperopt
def test_yaml_tags_are_refused_and_strings_are_never_evaluated(tmp_path):
    marker = tmp_path / "ran"
    with pytest.raises(ValueError, match="not plain YAML"):
        hyper.load_space(write_space(tmp_path / "tag.yaml", f"lr: {{choice: [!!python/object/apply:os.system ['touch {marker}']]}}"))
    payload = PAYLOAD.format(marker=marker)
    space = hyper.load_space(write_space(tmp_path / "str.yaml", f'loss_type: {{choice: ["{payload}", CE]}}'))
    assert space["loss_type"]["choice"][0] == payload
    # HyperTuning's params_dict path builds hyperopt nodes from the values as they are; sample it
    from hyperopt.pyll.stochastic import sample
    from recbole.trainer import HyperTuning

    drawn = {sample(HyperTuning._build_space_from_dict(hyper.hyperopt_params(space)))["loss_type"] for _ in range(30)}
    assert drawn == {payload, "CE"}
    # and recbole_gen's Config reads a config_dict string as a literal or leaves it a string
    assert literal(payload) == payload
    assert not marker.exists()


def test_preflight_rejects_unknown_names_and_bad_values_before_training(fast_config, tiny_dataset):
    fixed = {key: value for key, value in fast_config.items() if key != "learning_rate"}
    with pytest.raises(ValueError, match="'learnin_rate' is not a RecBole or recbole_gen setting; did you mean 'learning_rate'"):
        hyper.preflight("SASRec", "tiny", fixed, None, {"learnin_rate": {"choice": [0.01]}})
    marker = tiny_dataset / "ran"
    payload = PAYLOAD.format(marker=marker)
    with pytest.raises(ValueError, match=r"parameter 'learning_rate' = .*pathlib.* is not a valid setting"):
        hyper.preflight("SASRec", "tiny", fixed, None, {"learning_rate": {"choice": [0.01, payload]}})
    with pytest.raises(ValueError, match="parameter 'epochs' = 1.5 is not a valid setting"):
        hyper.preflight("SASRec", "tiny", {k: v for k, v in fixed.items() if k != "epochs"}, None,
                        {"epochs": {"uniform": [1.5, 2.5]}})
    assert not marker.exists()


@pytest.mark.parametrize("space, kwargs, message", [
    ({"lr": {"uniform": [0.1, 0.2]}, "n": {"choice": [1, 2]}}, {"algo": "exhaustive"}, r"\['lr'\] are ranges"),
    ({"n": {"choice": [1, 2]}, "m": {"choice": [1, 2, 3]}}, {"algo": "exhaustive", "max_evals": 4}, "all 6 combinations"),
    ({"n": {"choice": [1, 2]}}, {"algo": "random"}, "needs --max_evals"),
    ({"n": {"choice": [1, 2]}}, {"algo": "random", "max_evals": 2, "fixed": {"n": 3}}, r"\['n'\] are both searched"),
    ({"n": {"choice": [1, 2]}}, {"algo": "grid", "max_evals": 2}, "--algo must be one of"),
])
def test_search_settings_are_checked(space, kwargs, message):
    with pytest.raises(ValueError, match=message):
        hyper.hyper_search(space, "SASRec", "ml-100k", **kwargs)


def test_overrides_are_literals_or_strings():
    marker = "never"
    assert hyper.parse_overrides(["--epochs=2", "--load_col={'inter': ['user_id']}", f"--loss_type={PAYLOAD.format(marker=marker)}"]) == {
        "epochs": 2, "load_col": {"inter": ["user_id"]}, "loss_type": PAYLOAD.format(marker=marker)}
    with pytest.raises(ValueError, match="'--epochs': settings are given as --key=value"):
        hyper.parse_overrides(["--epochs"])
    with pytest.raises(ValueError, match="'epochs=2'"):
        hyper.parse_overrides(["epochs=2"])


@needs_hyperopt
def test_the_best_follows_the_metric_direction_and_failed_trials_are_recorded(fast_config, tiny_dataset, monkeypatch):
    """With a stand-in objective: a lower-is-better metric picks the lowest score, and a failed trial is
    recorded before the error surfaces."""
    from recbole_gen.config import Config

    def objective(config_dict, config_file_list=None, saved=True):
        config = Config(config_dict=config_dict, config_file_list=config_file_list, read_command_line=False)
        if config["learning_rate"] == 0.3:
            raise RuntimeError("diverged")
        return {"model": config["model"], "best_valid_score": config["learning_rate"], "valid_score_bigger": False,
                "best_valid_result": {"averagepopularity@10": config["learning_rate"]},
                "test_result": {"averagepopularity@10": 1.0}}

    monkeypatch.setattr(hyper, "objective_function", objective)
    fixed = {**fast_config, "metrics": ["Recall", "AveragePopularity"], "valid_metric": "AveragePopularity@10"}
    out = tiny_dataset / "search.json"
    _, result = hyper.hyper_search({"learning_rate": {"choice": [0.02, 0.01, 0.05]}}, "SASRec", "tiny", fixed,
                                   algo="exhaustive", output=str(out))
    assert sorted(trial["valid_score"] for trial in result["trials"]) == [0.01, 0.02, 0.05]
    assert result["best"]["params"] == {"learning_rate": 0.01} and result["valid_score_bigger"] is False
    assert json.loads(out.read_text()) == result
    with pytest.raises(RuntimeError, match="diverged"):
        hyper.hyper_search({"learning_rate": {"choice": [0.01, 0.3]}}, "SASRec", "tiny", fixed, algo="exhaustive",
                           output=str(out))
    written = json.loads(out.read_text())
    assert written["finished"] is False
    assert [failure["params"] for failure in written["failed"]] == [{"learning_rate": 0.3}]
    assert "RuntimeError: diverged" in written["failed"][0]["error"]


@needs_hyperopt
def test_cli_search_on_tiny_data_picks_the_best_validation_trial(fast_config, tiny_dataset, capsys):
    """Two real 1-epoch SASRec trials through RecBole's HyperTuning, from the command line."""
    space = write_space(tiny_dataset / "space.yaml", "learning_rate: {choice: [0.001, 0.01]}\n")
    out = tiny_dataset / "result.json"
    fixed = {**fast_config, "epochs": 1}
    overrides = [f"--{key}={value!r}" if isinstance(value, str) else f"--{key}={value}" for key, value in fixed.items()]
    hyper.main(["--model", "SASRec", "--dataset", "tiny", "--space", space, "--algo", "exhaustive",
                "--output", str(out), *overrides])
    result = json.loads(out.read_text())
    trials = result["trials"]
    assert result["finished"] and result["failed"] == []
    assert sorted(trial["params"]["learning_rate"] for trial in trials) == [0.001, 0.01]
    assert result["valid_metric"] == "NDCG@10" and result["valid_score_bigger"] is True
    for trial in trials:
        assert trial["valid_score"] == trial["best_valid_result"]["ndcg@10"]
        assert "ndcg@10" in trial[hyper.TEST_KEY]
    assert trials[0]["valid_score"] != trials[1]["valid_score"]  # else any pick would pass
    best = max(trials, key=lambda trial: trial["valid_score"])
    assert result["best"] == {key: best[key] for key in ("trial", "params", "valid_score")}
    assert f"best trial {best['trial']}: {best['params']}" in capsys.readouterr().out


@needs_hyperopt
def test_ray_tune_runs_the_same_trials(fast_config, tiny_dataset):
    pytest.importorskip("ray.tune")
    pytest.importorskip("pyarrow")
    fixed = {**fast_config, "epochs": 1}
    space = {"learning_rate": {"choice": [0.001, 0.01]}}
    _, by_ray = hyper.hyper_search(space, "SASRec", "tiny", fixed, algo="exhaustive", tool="ray",
                                   output=str(tiny_dataset / "ray.json"))
    _, by_hyperopt = hyper.hyper_search(space, "SASRec", "tiny", fixed, algo="exhaustive",
                                        output=str(tiny_dataset / "hyperopt.json"))
    scores = {tool: {trial["params"]["learning_rate"]: trial["valid_score"] for trial in result["trials"]}
              for tool, result in [("ray", by_ray), ("hyperopt", by_hyperopt)]}
    assert scores["ray"] == scores["hyperopt"] and len(scores["ray"]) == 2
    assert by_ray["best"]["params"] == by_hyperopt["best"]["params"]

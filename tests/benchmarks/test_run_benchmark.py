"""benchmarks/run_benchmark.py: a tiny end-to-end run, its --reuse guard and its convergence summary."""

import json
import os
import re
import subprocess
import sys

import pytest

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks")
sys.path.insert(0, BENCHMARKS)
import run_benchmark  # noqa: E402


def test_convergence_follows_the_metrics_direction():
    curve = [{"fd": 0.3}, {"fd": 0.1}, {"fd": 0.2}]
    assert "best at epoch 2 of 3" in run_benchmark.convergence(
        {"trained": True, "valid_metric": "fd", "valid_metric_bigger": False, "valid_curve": curve})
    assert "best at epoch 1 of 3" in run_benchmark.convergence(
        {"trained": True, "valid_metric": "fd", "valid_metric_bigger": True, "valid_curve": curve})
    assert "still improving" in run_benchmark.convergence(
        {"trained": True, "valid_metric": "fd", "valid_metric_bigger": False, "valid_curve": curve[:2]})


def test_a_tiny_benchmark_reports_seeds_spaces_and_refuses_to_reuse_other_settings(genrec_config, tiny_dataset):
    overrides = {**genrec_config, "gallery_users": 0}
    sets = [f"{key}={json.dumps(value)}" for key, value in overrides.items() if key not in ("epochs", "seed", "show_progress")]
    command = [sys.executable, os.path.join(BENCHMARKS, "run_benchmark.py"), "--dataset", "tiny", "--models", "TargetItem", "GenRec",
               "--epochs", "1", "--content", "cards", "--spaces", "identity", "semantic", "--semantic_fields", "class",
               "--sampling_seeds", "2", "--out", "table.md", "--set", *sets]
    run = subprocess.run(command, cwd=tiny_dataset, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-6000:]
    table = (tiny_dataset / "table.md").read_text()
    assert "## cards (rendered metadata cards), identity space" in table and "semantic space" in table
    assert "| TargetItem (cheats) | 1.0000 | 1.0000 | 1.0000 |" in table
    assert "| GenRec: tokenizer ceiling |" in table and "2 sampling seeds" in table
    result = json.loads((tiny_dataset / "saved" / "benchmark-tiny-GenRec.json").read_text())
    assert [len(result["results"]["cards"][space]["test"]) for space in ("identity", "semantic")] == [2, 2]
    assert result["results"]["cards"]["identity"]["test"][0] != result["results"]["cards"]["identity"]["test"][1]  # other seed, other images

    reused = subprocess.run(command + ["--reuse"], cwd=tiny_dataset, capture_output=True, text=True, check=True)
    assert "GenRec: reusing" in reused.stdout and "reused from" in (tiny_dataset / "table.md").read_text()
    refused = subprocess.run([*command[:command.index("--epochs") + 1], "2", *command[command.index("--epochs") + 2:], "--reuse"],
                             cwd=tiny_dataset, capture_output=True, text=True)
    assert refused.returncode != 0 and "other settings (epochs: 1 vs 2)" in refused.stderr

    # a default that changed since the saved run (here: faked in the saved result) is caught too
    saved = tiny_dataset / "saved" / "benchmark-tiny-GenRec.json"
    result["config"]["gen_top_k"] = 99
    saved.write_text(json.dumps(result))
    args = run_benchmark.parse_args(command[2:])
    with pytest.raises(SystemExit, match=r"another effective config.*gen_top_k: 99 vs \d+"):
        run_benchmark.reusable(str(saved), args, "GenRec")


def test_genrec_stages_are_rows_built_on_the_genrec_row_and_old_results_are_rescored(genrec_config, tiny_dataset):
    overrides = {**genrec_config, "gallery_users": 0, "rl_epochs": 1, "rl_steps_per_epoch": 2, "rl_batch_size": 4, "rl_group_size": 2,
                 "rl_reward_fit_epochs": 1}
    sets = [f"{key}={json.dumps(value)}" for key, value in overrides.items() if key not in ("epochs", "seed", "show_progress")]
    command = [sys.executable, os.path.join(BENCHMARKS, "run_benchmark.py"), "--dataset", "tiny", "--models", "GenRec", "GenRec+bestof",
               "GenRec+rl", "--epochs", "1", "--content", "cards", "--spaces", "identity", "--sampling_seeds", "2", "--out", "table.md",
               "--near_copy_thresholds", "identity=0.99", "--set", *sets]
    run = subprocess.run(command, cwd=tiny_dataset, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-6000:]
    saved = tiny_dataset / "saved"
    results = {model: json.loads((saved / f"benchmark-tiny-{model}.json").read_text()) for model in ("GenRec", "GenRec+bestof", "GenRec+rl")}
    assert results["GenRec+bestof"]["checkpoint"] == results["GenRec"]["checkpoint"] and not results["GenRec+bestof"]["trained"]
    assert results["GenRec+bestof"]["config"]["eval_best_of"] == 2
    assert results["GenRec+rl"]["config"]["rl_init_checkpoint"] == results["GenRec"]["checkpoint"]
    assert results["GenRec+rl"]["trained"] and results["GenRec+rl"]["checkpoint"] != results["GenRec"]["checkpoint"]
    table = (tiny_dataset / "table.md").read_text()
    assert "| GenRec+rl |" in table and "copyshare" in table and "nearcopyshare" in table
    assert all("nearcopyshare" in test for test in results["GenRec"]["results"]["cards"]["identity"]["test"])
    per_user = {model: result["results"]["cards"]["identity"]["per_user_targetsim"] for model, result in results.items()}
    for model, result in results.items():  # the per-user values are those the row's TargetSim averages (over seeds too)
        seeds = [test["targetsim"] for test in result["results"]["cards"]["identity"]["test"]]
        assert sum(per_user[model]["sims"]) / len(per_user[model]["sims"]) == pytest.approx(sum(seeds) / len(seeds), abs=1e-4)
    assert per_user["GenRec"]["targets"] == per_user["GenRec+rl"]["targets"]
    summary = table[table.index("GenRec (cards"):table.index("GenRec+bestof (cards")]
    paired = re.search(r"- TargetSim minus (\S+)'s, paired over users: ([+-]\d\.\d{4}) \[([+-]\d\.\d{4}), ([+-]\d\.\d{4})\]", summary)
    assert paired and paired.group(1) in ("GenRec+bestof", "GenRec+rl"), summary
    difference = (sum(per_user["GenRec"]["sims"]) - sum(per_user[paired.group(1)]["sims"])) / len(per_user["GenRec"]["sims"])
    assert float(paired.group(2)) == pytest.approx(difference, abs=1e-4)
    assert float(paired.group(3)) <= float(paired.group(2)) <= float(paired.group(4))

    # a result from before per-user values were kept is re-scored with --reevaluate only
    args = run_benchmark.parse_args(command[2:])
    without = tiny_dataset / "without_per_user.json"
    unpaired = json.loads((saved / "benchmark-tiny-GenRec.json").read_text())
    unpaired["results"]["cards"]["identity"].pop("per_user_targetsim")
    without.write_text(json.dumps(unpaired))
    assert run_benchmark.reusable(str(without), args, "GenRec")[1] is False
    assert run_benchmark.reusable(str(without), args, "GenRec", reevaluate=True)[1] is True
    assert run_benchmark.reusable(str(saved / "benchmark-tiny-GenRec.json"), args, "GenRec", reevaluate=True)[1] is False

    # a result scored with fewer metrics (an older run) is re-scored from its checkpoint, its training record kept
    old = results["GenRec"]
    old["config"]["metrics"] = [m for m in old["config"]["metrics"] if m != "CopyShare"]
    for test in old["results"]["cards"]["identity"]["test"]:
        test.pop("copyshare")
    (saved / "benchmark-tiny-GenRec.json").write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="another effective config"):
        run_benchmark.reusable(str(saved / "benchmark-tiny-GenRec.json"), run_benchmark.parse_args(command[2:]), "GenRec")
    rerun = subprocess.run(command[:4] + ["--models", "GenRec"] + command[command.index("--epochs"):] + ["--reevaluate"],
                           cwd=tiny_dataset, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr[-6000:]
    assert "GenRec: re-scoring" in rerun.stdout
    rescored = json.loads((saved / "benchmark-tiny-GenRec.json").read_text())
    assert "copyshare" in rescored["results"]["cards"]["identity"]["test"][0]
    assert rescored["epoch_seconds"] == old["epoch_seconds"] and rescored["trained_by"] == old["source"]


def test_rl_set_configures_the_rl_row_only(tiny_dataset, monkeypatch):
    monkeypatch.chdir(tiny_dataset)
    args = run_benchmark.parse_args(["--dataset", "tiny", "--models", "GenRec", "GenRec+rl", "--content", "cards",
                                     "--set", "rl_epochs=2", "--rl_set", 'rl_algorithm="dpo"', "rl_epochs=1"])
    args.base_checkpoint = "saved/GenRec.pth"
    supervised, rl = (run_benchmark.model_config(args, model) for model in ("GenRec", "GenRec+rl"))
    assert (supervised["rl_algorithm"], supervised["rl_epochs"], supervised["rl_init_checkpoint"]) == ("grpo", 2, None)
    assert (rl["rl_algorithm"], rl["rl_epochs"], rl["rl_init_checkpoint"]) == ("dpo", 1, "saved/GenRec.pth")
    assert run_benchmark.settings_of(args, "GenRec+rl")["rl_set"] == ['rl_algorithm="dpo"', "rl_epochs=1"]
    assert "rl_set" not in run_benchmark.settings_of(args, "GenRec")  # other rows reuse results made without it

    # a saved RL row is reused only where the effective config --rl_set makes is the same
    plain = run_benchmark.parse_args(["--dataset", "tiny", "--models", "GenRec", "GenRec+rl", "--content", "cards", "--set", "rl_epochs=2"])
    plain.base_checkpoint = args.base_checkpoint
    saved = tiny_dataset / "saved-rl.json"
    saved.write_text(json.dumps({"settings": run_benchmark.settings_of(plain, "GenRec+rl"), "checkpoint": "saved/rl.pth",
                                 "config": run_benchmark.effective_config(run_benchmark.model_config(plain, "GenRec+rl"))}))
    assert run_benchmark.reusable(str(saved), plain, "GenRec+rl")[1] is False
    with pytest.raises(SystemExit, match="rl_algorithm: 'grpo' vs 'dpo'"):
        run_benchmark.reusable(str(saved), args, "GenRec+rl")

    # an RL row saved before reward ensembles, the entropy bonus and batch-scaled advantages matches only
    # one reward fit, no bonus and group-scaled advantages
    old = json.loads(saved.read_text())
    for key in ("rl_reward_ensemble", "rl_reward_ensemble_aggregate", "rl_entropy_weight", "rl_advantage_scale"):
        old["config"].pop(key)
    saved.write_text(json.dumps(old))
    with pytest.raises(SystemExit, match="rl_reward_ensemble"):
        run_benchmark.reusable(str(saved), plain, "GenRec+rl")  # the default now rewards by four fits
    one_fit = run_benchmark.parse_args(["--dataset", "tiny", "--models", "GenRec", "GenRec+rl", "--content", "cards", "--set", "rl_epochs=2",
                                        "--rl_set", "rl_reward_ensemble=1"])
    one_fit.base_checkpoint = args.base_checkpoint
    old["settings"] = run_benchmark.settings_of(one_fit, "GenRec+rl")
    saved.write_text(json.dumps(old))
    assert run_benchmark.reusable(str(saved), one_fit, "GenRec+rl")[1] is False

"""benchmarks/run_benchmark.py: a tiny end-to-end run, its --reuse guard and its convergence summary."""

import json
import os
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
    subprocess.run(command, check=True, cwd=tiny_dataset, capture_output=True)
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

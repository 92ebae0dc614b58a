"""benchmarks/reward_transfer.py: TargetSim of a checkpoint's samples in the evaluation space and in reward fits."""

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import reward_transfer  # noqa: E402
from eval_seeds import load_genrec, score_seeds  # noqa: E402

from recbole_gen.quick_start import run_recbole_gen  # noqa: E402


def test_a_runs_rewarded_fits_are_its_ensembles_seeds():
    assert reward_transfer.rewarded_seeds({"rl_reward_fit_seed": 7, "rl_reward_ensemble": 1}) == [7]
    assert reward_transfer.rewarded_seeds({"rl_reward_fit_seed": 7, "rl_reward_ensemble": 3}) == [7, 8, 9]


def test_the_evaluation_column_is_the_benchmarks_targetsim_and_each_fit_is_its_own_space(genrec_config):
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "eval_samples": 1, "rl_reward_fit_epochs": 1, "rl_reward_ensemble": 1}
    checkpoint = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    row = reward_transfer.transfer_row("GenRec", checkpoint, [3], "valid", held_out=[11, 12])
    _, _, trainer, valid_data, _ = load_genrec(checkpoint)
    assert row["evaluation"][0] == pytest.approx(float(score_seeds(trainer, valid_data, "valid", [3])[0]["targetsim"]), abs=1e-4)
    assert row["rewarded"] == [7] and sorted(row["per_fit"]) == [7, 11, 12]
    assert len({round(sim, 6) for sim in row["per_fit"].values()}) == 3  # three fits, three spaces
    assert row["held_out_sims"][0] == pytest.approx((row["per_fit"][11] + row["per_fit"][12]) / 2)
    with pytest.raises(SystemExit, match=r"--held_out_seeds \[7\]: --genrec .* was rewarded in those fits"):
        reward_transfer.transfer_row("GenRec", checkpoint, [3], "valid", held_out=[7, 12])


def test_the_report_reads_each_row_against_the_first():
    def row(label, rewarded, evaluation, rewarded_sims, held_out_sims):
        return {"label": label, "rewarded": rewarded, "evaluation": (evaluation, 0.0), "rewarded_sims": (rewarded_sims, 0.0),
                "held_out_sims": (held_out_sims, 0.0), "per_fit": {seed: rewarded_sims for seed in rewarded}}

    args = type("Args", (), {"split": "valid", "seeds": 1, "held_out_seeds": [101]})
    text = reward_transfer.report([row("start", [7], 0.02, 0.03, 0.01), row("hacked", [7], 0.01, 0.06, 0.00)], args, "cmd")
    hacked = next(line for line in text.splitlines() if line.startswith("| hacked |"))
    assert hacked.endswith("| +0.0600 | -0.0100 / +0.0300 / -0.0100 |")
    assert "| seed 7 |" in text and "| hacked | 0.0600 |" in text

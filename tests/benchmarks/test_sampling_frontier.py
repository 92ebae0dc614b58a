"""benchmarks/sampling_frontier.py: the points a shown-item policy gives from a recommender's scores."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import sampling_frontier  # noqa: E402
from eval_seeds import load_genrec, score_seeds  # noqa: E402

from recbole_gen.quick_start import run_recbole_gen  # noqa: E402

UNITS = torch.cat([torch.zeros(1, 3), torch.eye(3)])  # row 0 padding; items 1..3 = e0..e2


def test_expected_embedding_over_the_top_items_weights_them_by_their_score_softmax():
    scores = torch.tensor([[-torch.inf, 2.0, 2.0 - torch.log(torch.tensor(3.0)).item(), -5.0]])
    assert sampling_frontier.expected_embedding(UNITS, 1)(scores)[0].tolist() == [1.0, 0.0, 0.0]
    assert sampling_frontier.expected_embedding(UNITS, 2)(scores)[0].tolist() == pytest.approx([0.75, 0.25, 0.0])
    everything = sampling_frontier.expected_embedding(UNITS)(scores)[0]
    assert everything[2] > 0 and everything.sum().item() == pytest.approx(1.0)


def test_the_nearest_item_is_the_closest_catalog_row_never_the_padding_row():
    scores = torch.tensor([[-torch.inf, 1.0, 0.9, -5.0], [-torch.inf, -5.0, -5.0, 1.0]])
    shown = sampling_frontier.nearest_item(UNITS, sampling_frontier.expected_embedding(UNITS, 2))(scores)
    assert shown.tolist() == [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    padding_is_nearest = lambda scores: -UNITS[1:].sum(dim=0).expand(len(scores), -1)  # closest to the zero row alone
    assert sampling_frontier.nearest_item(UNITS, padding_is_nearest)(scores).abs().sum(dim=1).tolist() == [1.0, 1.0]


def test_genrec_checkpoints_are_labelled_by_their_argument_or_by_number(tmp_path):
    odd = tmp_path / "x=y.pth"
    odd.write_bytes(b"")
    assert sampling_frontier.labelled(["saved/a.pth", "rl=saved/b=c.pth", "saved/d.pth", str(odd)]) == [
        ("GenRec", "saved/a.pth"), ("rl", "saved/b=c.pth"), ("GenRec 3", "saved/d.pth"), ("GenRec 4", str(odd))]
    assert sampling_frontier.labelled([f"mix w=0.35={odd}"]) == [("mix w=0.35", str(odd))]  # the rest names a file


def test_checkpoints_scored_in_different_spaces_are_told_apart_by_their_content_and_encoder_settings():
    saved = {"dataset": "ml-100k", "final": {"image_dir": None, "encoder_fit_seed": 2020, "learning_rate": 0.001, "seed": 2020}}
    other_run = {"dataset": "ml-100k", "final": {**saved["final"], "learning_rate": 0.01, "seed": 7, "content_cache_dir": "/tmp/c"}}
    posters = {"dataset": "ml-100k", "final": {**saved["final"], "image_dir": "posters/images", "encoder_fit_seed": 3}}
    assert sampling_frontier.space_differences(saved, other_run) == []
    assert sampling_frontier.space_differences(saved, posters) == ["encoder_fit_seed (2020 vs 3)", "image_dir (None vs 'posters/images')"]
    assert sampling_frontier.space_differences(saved, {**saved, "dataset": "tiny"}) == ["dataset ('ml-100k' vs 'tiny')"]


def point(sims, targets, fd=0.05, name="point", fd_mean=0.01, kind="genrec", copies=0.25):
    sims = torch.tensor(sims, dtype=torch.double)
    return {"name": name, "label": name, "kind": kind, "n": 1, "targetsim": sims.mean().item(), "fd": fd, "fd_mean": fd_mean,
            "per_user": (targets, sims), "personallift": 0.0, "personallift_ci95_low": 0.0, "personallift_ci95_high": 0.0,
            "codecopyshare": copies}


def test_a_point_meets_the_targets_when_its_paired_leads_over_every_ranking_row_are_resolved_and_its_fd_is_low():
    targets = torch.stack([torch.arange(40), torch.arange(40) % 7 + 1], dim=1)
    base = torch.linspace(-0.2, 0.3, 40)
    popular = point(base.tolist(), targets, fd=1.9, name="PopItem", kind="reference")
    top1 = point((base - 0.01).tolist(), targets, fd=0.06, name="SASRec top-1", kind="recommender")
    rivals = [popular, top1]
    clear = point((base + 0.02 + 0.001 * torch.cos(torch.arange(40.0))).tolist(), targets)
    noisy = point((base + 0.02 + 0.3 * torch.tensor([1.0, -1.0] * 20)).tolist(), targets)
    assert sampling_frontier.verdict(clear, rivals, sampling_frontier.leads(clear, rivals), fd_bar=0.06) == "yes"
    assert sampling_frontier.verdict(noisy, rivals, sampling_frontier.leads(noisy, rivals), fd_bar=0.06) == "by the mean only: a paired interval includes 0"
    assert sampling_frontier.verdict(clear, rivals, sampling_frontier.leads(clear, rivals), fd_bar=0.04) == "no"  # FD above the bar
    assert sampling_frontier.verdict(popular, rivals, sampling_frontier.leads(popular, rivals), fd_bar=2.0) == "no"
    between = point((base - 0.005).tolist(), targets)  # above the top-1, below PopItem
    assert sampling_frontier.verdict(between, rivals, sampling_frontier.leads(between, rivals), fd_bar=0.06) == "no"
    other_users = point(clear["per_user"][1].tolist(), targets.flip(0))
    assert sampling_frontier.verdict(other_users, rivals, sampling_frontier.leads(other_users, rivals), fd_bar=0.06) == "yes (not paired)"
    expected = point((base + 0.1).tolist(), targets, fd=0.7, name="expected embedding", kind="expected", copies=1.0)
    table = sampling_frontier.markdown([popular, top1, expected, clear], rivals, 0.06, "the top-1's", "cmd", "valid")
    assert "| shown item | seeds | TargetSim | minus PopItem [95%] | minus SASRec top-1 [95%] |" in table
    assert "| FD | FD's means part | copies by codes | both targets |" in table
    assert "| point | 1 | 0.0700 | +0.0200 [+0.0" in table and table.rstrip().endswith("| 0.0500 | 0.0100 | 0.250 | yes |")
    assert "| 0.7000 | 0.0100 | - | no |" in table  # an embedding, not an image: no copy share
    assert "| 1.9000 | 0.0100 | 1 (catalog) | no |" in table  # PopItem shows a catalog item


def test_compared_points_get_a_paired_column_outside_the_verdict():
    targets = torch.stack([torch.arange(40), torch.arange(40) % 7 + 1], dim=1)
    base = torch.linspace(-0.2, 0.3, 40)
    popular = point(base.tolist(), targets, fd=1.9, name="PopItem")
    top1 = point((base - 0.01).tolist(), targets, fd=0.06, name="SASRec top-1")
    best_of = point((base + 0.05).tolist(), targets, name="best of 8")
    tuned = point((base + 0.02).tolist(), targets, name="tuned")
    rows = [popular, top1, best_of, tuned]
    compared = sampling_frontier.compared_rows(rows, ["best of 8"])
    assert compared == [best_of]
    table = sampling_frontier.markdown(rows, [popular, top1], 0.06, "the top-1's", "cmd", "valid", compared)
    assert "| minus PopItem [95%] | minus SASRec top-1 [95%] | minus best of 8 [95%] | PersonalLift" in table
    tuned_line = next(line for line in table.splitlines() if line.startswith("| tuned |"))
    assert "| -0.0300 [-0.03" in tuned_line and tuned_line.endswith("| yes |")  # behind best-of-8, yet it beats the ranking rows
    with pytest.raises(SystemExit, match="--compare_with 'best of 16': no such point; the points are"):
        sampling_frontier.compared_rows(rows, ["best of 16"])


def test_a_best_of_point_is_the_benchmarks_best_of_evaluation_and_plain_points_sample_once(genrec_config):
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "rl_reward_fit_epochs": 1, "eval_best_of": 2}
    checkpoint = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    rows, _ = sampling_frontier.genrec_points(checkpoint, [(1.0, 1.0)], seeds=1, split="valid", ceiling=False, best_of=[3])
    assert [row["name"] for row in rows] == ["GenRec, T=1, guidance 1", "GenRec, best of 3, T=1, guidance 1"]

    def fresh(overrides):  # a newly loaded checkpoint, as run_benchmark scores GenRec and GenRec+bestof
        loaded, _, trainer, valid_data, _ = load_genrec(checkpoint, overrides=overrides)
        return float(score_seeds(trainer, valid_data, "valid", [loaded["seed"]])[0]["targetsim"])

    assert rows[1]["targetsim"] == pytest.approx(fresh({"eval_best_of": 3}))
    assert rows[0]["targetsim"] == pytest.approx(fresh({"eval_best_of": 1}))  # not the run's best of 2
    assert rows[0]["targetsim"] != rows[1]["targetsim"]


def test_recommender_and_genrec_points_are_paired_user_by_user_on_the_same_targets(genrec_config):
    config = {**genrec_config, "epochs": 1, "gallery_users": 0}
    genrec = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    sasrec = run_recbole_gen(model="SASRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    recommender = sampling_frontier.recommender_points(sasrec, [1.0], seeds=1, split="test")
    generator, _ = sampling_frontier.genrec_points(genrec, [(1.0, 1.0)], seeds=2, split="test", ceiling=False)  # then scores its ceiling too
    for row in recommender + generator:  # each point's per-user values are those its TargetSim averages
        assert row["per_user"][1].mean().item() == pytest.approx(row["targetsim"], abs=1e-4)
    assert 0 <= generator[0]["codecopyshare"] <= 1  # a generator's copies are counted by its codes ...
    assert not any("codecopyshare" in row for row in recommender)  # ... catalog embeddings have none to count
    top1 = next(row for row in recommender if row["kind"] == "recommender")
    mean, low, high = sampling_frontier.paired_difference(generator[0]["per_user"], top1["per_user"])
    assert mean == pytest.approx(generator[0]["targetsim"] - top1["targetsim"], abs=2e-4) and low <= mean <= high

"""Distributed runs (RecBole's DDP) on 2 CPU processes (gloo): the numbers of one process, files written once."""

import glob
import os
import socket

import pytest
import torch
from recbole.utils import ModelType
from torch.utils.data.distributed import DistributedSampler

from recbole_gen.evaluator.collector import merge_users
from recbole_gen.fitting import cached_fit
from recbole_gen.quick_start import load_data_and_model, run
from recbole_gen.trainer import get_trainer
from conftest import genrec_config_dict, write_tiny_dataset

METRICS = ["Recall", "NDCG", "TargetSim", "PersonalLift", "Diversity", "FD"]


def free_port():
    with socket.socket() as probe:
        probe.bind(("localhost", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory):
    """A tiny GenRec trained for 1 epoch and tested by 2 processes: ``(root, run's result)``."""
    root = tmp_path_factory.mktemp("ddp")
    write_tiny_dataset(root)  # 24 users: 12 per process, so RecBole's average over processes is exact
    config = {**genrec_config_dict(root), "epochs": 1, "gpu_id": "", "metrics": METRICS, "valid_metric": "Recall@10",
              "metric_decimal_place": 8, "gallery_users": 1, "gallery_samples": 1}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("CUDA_VISIBLE_DEVICES", "")  # Config sets it from gpu_id; restored after the module
        yield root, run(model="GenRec", dataset="tiny", config_dict=config, nproc=2, port=free_port())


def test_two_processes_score_a_checkpoint_as_one_does(two_process_run, tmp_path, monkeypatch):
    root, result = two_process_run
    assert len(glob.glob(str(root / "log" / "GenRec" / "*.log"))) == 2  # one log per process: it did run on two

    monkeypatch.chdir(tmp_path)  # this process's logs stay apart from the run's
    config, model, _, _, _, test_data = load_data_and_model(result["saved_model_file"], {"gpu_id": "", "gallery_users": 0})
    single = get_trainer(config["MODEL_TYPE"], "GenRec", config)(config, model).evaluate(test_data, load_best_model=False)

    two = result["test_result"]
    assert set(two) == set(single) and "fd" in two and "personallift" in two
    for metric in single:  # RecBole's average over processes passes through float32: 1e-6
        assert two[metric] == pytest.approx(single[metric], abs=1e-6), metric


def test_two_process_training_writes_its_files_once(two_process_run):
    root, result = two_process_run
    checkpoints = [path for path in glob.glob(str(root / "saved" / "*.pth")) if not path.endswith("-resume.pth")]
    assert checkpoints == [result["saved_model_file"]]
    assert len(glob.glob(str(root / "saved" / "*-resume.pth"))) == 1
    assert len(os.listdir(root / "log_tensorboard")) == 1
    assert sorted(os.listdir(root / "gallery")) == sorted(
        os.path.basename(result["saved_model_file"]).replace(".pth", suffix) for suffix in ("-test.png", "-valid-epoch000.png"))
    assert 0.0 <= result["best_valid_result"]["recall@10"] <= 1.0


def test_gathered_users_are_the_users_of_one_process():
    """5 users dealt to 2 processes as RecBole's DistributedSampler deals them (user 0 twice): merged, every
    user once, in order, their pairs re-indexed."""
    n_users, k, d = 5, 2, 3
    shown = torch.arange(n_users * k * d, dtype=torch.float).view(n_users, k, d)
    code_share = torch.rand(n_users, k)
    target = torch.tensor([[0, 7], [1, 8], [2, 9], [2, 10], [3, 11], [4, 12]])
    history = torch.tensor([[0, 1], [0, 2], [3, 3], [4, 4], [4, 5]])

    def local_pairs(pairs, rows):
        return torch.cat([torch.stack([torch.full_like(items, user), items], dim=1)
                          for user, row in enumerate(rows.tolist()) for items in [pairs[pairs[:, 0] == row, 1]]])

    parts = []
    for rank in range(2):
        rows = torch.tensor(list(DistributedSampler(range(n_users), num_replicas=2, rank=rank, shuffle=False)))
        parts.append({"rows": rows, "gen.shown": shown[rows], "gen.code_share": code_share[rows],
                      "gen.target": local_pairs(target, rows), "gen.history": local_pairs(history, rows)})
    assert parts[1]["rows"].tolist() == [1, 3, 0]  # the padding repeats user 0

    merged = merge_users(parts)
    assert torch.equal(merged["gen.shown"], shown) and torch.equal(merged["gen.code_share"], code_share)
    assert torch.equal(merged["gen.target"], target) and torch.equal(merged["gen.history"], history)

    with pytest.raises(ValueError, match="not every row"):
        merge_users(parts[:1])


def test_rank_zero_fits_while_the_others_wait_then_load_its_fit(tmp_path, monkeypatch):
    """cached_fit as rank 1 of a run: it waits at the barrier, meanwhile rank 0 fits and reaches the barrier,
    then rank 1 finds rank 0's folder and does not fit."""
    rank, events = [1], []

    def fit(folder):
        events.append(f"rank {rank[0]} fits")
        with open(os.path.join(folder, "weights"), "w") as f:
            f.write("fitted")

    def barrier():
        events.append(f"rank {rank[0]} at the barrier")
        if rank[0] == 1:  # the barrier holds rank 1 until rank 0 is through its cached_fit
            rank[0] = 0
            cached_fit(str(tmp_path / "cache"), "fit", {"setting": 1}, fit, seed=0)
            rank[0] = 1

    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.distributed, "get_rank", lambda: rank[0])
    monkeypatch.setattr(torch.distributed, "barrier", barrier)
    folder = cached_fit(str(tmp_path / "cache"), "fit", {"setting": 1}, fit, seed=0)
    assert events == ["rank 1 at the barrier", "rank 0 fits", "rank 0 at the barrier"]
    assert os.path.isdir(folder)


def test_the_rl_stage_refuses_to_run_distributed():
    with pytest.raises(ValueError, match="rl_init_checkpoint.*one process"):
        get_trainer(ModelType.SEQUENTIAL, "GenRec", {"rl_init_checkpoint": "supervised.pth", "single_spec": False})

"""benchmarks/sampling_frontier.py: the points a shown-item policy gives from a recommender's scores."""

import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import sampling_frontier  # noqa: E402

UNITS = torch.cat([torch.zeros(1, 3), torch.eye(3)])  # row 0 padding; items 1..3 = e0..e2


def test_expected_embedding_over_the_top_items_weights_them_by_their_score_softmax():
    scores = torch.tensor([[-torch.inf, 2.0, 2.0 - torch.log(torch.tensor(3.0)).item(), -5.0]])
    assert sampling_frontier.expected_embedding(UNITS, 1)(scores)[0].tolist() == [1.0, 0.0, 0.0]
    assert sampling_frontier.expected_embedding(UNITS, 2)(scores)[0].tolist() == pytest.approx([0.75, 0.25, 0.0])
    everything = sampling_frontier.expected_embedding(UNITS)(scores)[0]
    assert everything[2] > 0 and everything.sum().item() == pytest.approx(1.0)


def test_genrec_checkpoints_are_labelled_by_their_argument_or_by_number(tmp_path):
    odd = tmp_path / "x=y.pth"
    odd.write_bytes(b"")
    assert sampling_frontier.labelled(["saved/a.pth", "rl=saved/b=c.pth", "saved/d.pth", str(odd)]) == [
        ("GenRec", "saved/a.pth"), ("rl", "saved/b=c.pth"), ("GenRec 3", "saved/d.pth"), ("GenRec 4", str(odd))]

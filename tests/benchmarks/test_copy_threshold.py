"""benchmarks/copy_threshold.py: how its near-copy rules treat catalog items held out as new items."""

import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import copy_threshold  # noqa: E402

E = torch.eye(3)


def test_held_out_sims_compare_each_item_with_the_others_only():
    catalog = torch.stack([E[0], E[1], (E[0] + E[2]) / 2 ** 0.5])
    drawn = torch.stack([E[0], (E[1] + E[2]) / 2 ** 0.5, E[2]])
    posters, reconstructed = copy_threshold.held_out_sims(catalog, drawn)
    # item 0's nearest other is item 2 (cos 1/sqrt2), never itself (1); item 1 is orthogonal to both others
    assert torch.allclose(posters, torch.tensor([2 ** -0.5, 0.0, 2 ** -0.5]))
    # item 1's reconstruction leans to item 2 (1/2); item 2's is near only item 2 itself (1/sqrt2), which is held out
    assert torch.allclose(reconstructed, torch.tensor([2 ** -0.5, 0.5, 0.0]))


def test_held_out_code_shares_are_each_items_largest_share_with_another():
    codes = torch.tensor([[1, 2, 3, 4], [1, 2, 3, 5], [9, 9, 9, 9], [9, 9, 9, 9]])
    assert copy_threshold.held_out_code_shares(codes).tolist() == [0.75, 0.75, 1.0, 1.0]

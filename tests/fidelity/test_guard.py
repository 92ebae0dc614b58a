"""The fidelity guard: running checks once per image, choosing each row's candidate, pass rates, build_guard."""

import pytest
import torch

from fidelity_catalog import SIZE, make_catalog, pool_embed
from recbole_gen.fidelity.checks import Verdict
from recbole_gen.fidelity.guard import FidelityGuard, build_guard, pass_rates


class ValueCheck:
    """Passes the images whose pixels hold a value in ``passing``; records the embeddings it was given."""

    uses_embeddings = True

    def __init__(self, name, passing):
        self.name = name
        self.passing = passing
        self.embeddings_seen = []

    def __call__(self, images, embeddings=None):
        self.embeddings_seen.append(embeddings)
        return [Verdict(passed=int(image[0, 0, 0]) in self.passing, score=0.0, reason="") for image in images]


class CountingEmbed:
    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return torch.zeros(len(images), 4)


def valued_images(n):
    """``n`` images, image ``i`` filled with the value ``i``."""
    return torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 2, 2).contiguous()


def value_guard():
    # images 0, 2, 3, 4 pass both checks
    checks = [ValueCheck("first", {0, 1, 2, 3, 4}), ValueCheck("second", {0, 2, 3, 4, 5, 6})]
    return FidelityGuard(checks, CountingEmbed()), checks


def test_select_picks_the_preferred_passing_candidate_or_minus_one():
    guard, checks = value_guard()
    preference = torch.tensor([0.1, 0.9, 0.5, 0.3, 0.2, 0.8, 0.7, 0.6, 0.5])  # rows of 3 candidates
    selection = guard.select(valued_images(9), preference, group_size=3)
    # row 0: 1 is preferred but fails -> 2; row 1: 5 fails -> 3 over 4; row 2: nothing passes
    assert selection.index.tolist() == [2, 3, -1]
    assert selection.result.passed.tolist() == [True, False, True, True, True, False, False, False, False]
    assert guard.embed.calls == 1
    assert checks[0].embeddings_seen[0] is checks[1].embeddings_seen[0]


def test_select_refuses_groups_that_do_not_divide_the_candidates():
    guard, _ = value_guard()
    with pytest.raises(ValueError, match="group_size=4 must divide the 9 candidates"):
        guard.select(valued_images(9), torch.zeros(9), group_size=4)


def test_pass_rates_count_each_check_and_all():
    guard, _ = value_guard()
    rates = pass_rates(guard(valued_images(9)))
    assert rates == pytest.approx({"first": 5 / 9, "second": 6 / 9, "all": 4 / 9, "n_images": 9, "n_passed": 4})


def test_guard_without_embedding_checks_does_not_embed():
    check = ValueCheck("plain", {1})
    check.uses_embeddings = False
    result = FidelityGuard([check])(valued_images(3))
    assert result.passed.tolist() == [False, True, False]
    assert check.embeddings_seen == [None]


CONFIG = {
    "fidelity_checks": ["near_copy", "realism"],
    "fidelity_copy_hash_distance": 4,
    "fidelity_copy_similarity": None,
    "fidelity_copy_quantile": 0.05,
    "fidelity_realism_neighbours": 5,
    "fidelity_realism_min": None,
    "fidelity_realism_quantile": 0.01,
    "fidelity_safety_model": None,
    "fidelity_safety_labels": ["nsfw"],
    "fidelity_safety_max_score": 0.5,
}


def guard_from(config, catalog, reconstructions=None):
    return build_guard(config, catalog.images, reconstructions, catalog.embeddings, catalog.has_content, pool_embed)


def test_built_guard_shows_new_items_and_neither_copies_nor_noise():
    catalog = make_catalog()
    reconstructions = catalog.images.roll(1, dims=3)  # a decoding one pixel off
    guard = guard_from(CONFIG, catalog, reconstructions)
    noise = torch.randint(0, 256, (2, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    candidates = torch.stack([catalog.images[17], noise[0], catalog.new_item(style=2, seed=1),
                              catalog.images[3], noise[0], noise[1]])
    selection = guard.select(candidates, torch.tensor([0.9, 0.8, 0.1, 0.9, 0.8, 0.7]), group_size=3)
    assert selection.index.tolist() == [2, -1]
    verdicts = selection.result.verdicts
    assert [verdict.passed for verdict in verdicts["near_copy"]] == [False, True, True, False, True, True]
    assert [verdict.passed for verdict in verdicts["realism"]] == [True, False, True, True, False, False]


@pytest.mark.parametrize("checks, message", [
    (["near_copy", "nsfw"], r"fidelity_checks: unknown check\(s\) \['nsfw'\]; accepted: near_copy, realism, safety"),
    ("near_copy", "fidelity_checks must be a list of check names"),
    (["safety"], "fidelity_checks lists 'safety' but fidelity_safety_model is None"),
    (["near_copy"], "fidelity_copy_similarity is None, which calibrates it .* but none were given"),
])
def test_build_guard_refuses_bad_settings(checks, message):
    with pytest.raises(ValueError, match=message):
        guard_from({**CONFIG, "fidelity_checks": checks}, make_catalog())

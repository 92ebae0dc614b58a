"""The fidelity guard: running checks once per image, choosing each row's candidate, pass rates, build_guard."""

import pytest
import torch

from fidelity_catalog import SIZE, blur_reconstruct, collapsing_embedder, make_catalog, pool_embed
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


def test_a_waived_check_does_not_fail_the_images_it_is_waived_for_but_keeps_their_verdicts():
    guard, _ = value_guard()
    # images 5 and 6 fail only "first", 7 and 8 both; "first" is waived for 5 and 7
    waived = {"first": torch.tensor([False, False, False, False, False, True, False, True, False])}
    result = guard(valued_images(9), waived)
    assert result.passed.tolist() == [True, False, True, True, True, True, False, False, False]
    assert not result.verdicts["first"][5].passed  # the verdict is kept
    selection = guard.select(valued_images(9), torch.tensor([0.1, 0.9, 0.5, 0.3, 0.2, 0.8, 0.7, 0.6, 0.5]), 3, waived)
    assert selection.index.tolist() == [2, 5, -1]  # row 1 now shows its preferred candidate, 5
    with pytest.raises(ValueError, match=r"waived: no check named \['third'\]"):
        guard(valued_images(9), {"third": torch.ones(9, dtype=torch.bool)})


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
    "fidelity_checks": ["near_copy", "realism", "neighbours"],
    "fidelity_copy_hash_distance": None,
    "fidelity_copy_similarity": None,
    "fidelity_copy_quantile": 0.025,
    "fidelity_realism_min_psnr": None,
    "fidelity_realism_quantile": 0.01,
    "fidelity_neighbours": 5,
    "fidelity_neighbours_min": None,
    "fidelity_neighbours_quantile": 0.01,
    "fidelity_safety_model": None,
    "fidelity_safety_labels": ["nsfw"],
    "fidelity_safety_max_score": 0.5,
}


def guard_from(config, catalog, reconstructions=None, embed=pool_embed, reconstruct=None):
    return build_guard(config, catalog.images, reconstructions, catalog.embeddings, catalog.has_content, embed,
                       reconstruct=reconstruct)


def test_built_guard_shows_new_items_and_neither_copies_nor_noise():
    catalog = make_catalog()
    # noise embeds onto item 3, as off-distribution images do in a small fitted space: only realism stops it
    guard = guard_from(CONFIG, catalog, blur_reconstruct(catalog.images), collapsing_embedder(catalog, 3),
                       blur_reconstruct)
    noise = torch.randint(0, 256, (2, 3, SIZE, SIZE), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    candidates = torch.stack([catalog.images[17], noise[0], catalog.new_item(style=0, seed=1),
                              catalog.images[3], noise[0], noise[1]])
    selection = guard.select(candidates, torch.tensor([0.9, 0.8, 0.1, 0.9, 0.8, 0.7]), group_size=3)
    assert selection.index.tolist() == [2, -1]
    verdicts = selection.result.verdicts
    assert [verdict.passed for verdict in verdicts["near_copy"]] == [False, True, True, False, True, True]
    assert [verdict.passed for verdict in verdicts["realism"]] == [True, False, True, True, False, False]
    assert [verdict.passed for verdict in verdicts["neighbours"]] == [True] * 6


def test_built_guard_uses_given_thresholds_and_embeds_only_when_a_check_needs_it():
    catalog = make_catalog()
    config = {**CONFIG, "fidelity_checks": ["near_copy", "realism"], "fidelity_copy_hash_distance": 4,
              "fidelity_copy_similarity": 0.9, "fidelity_realism_min_psnr": 20.0}
    near_copy, realism = guard_from(config, catalog, reconstruct=blur_reconstruct).checks  # no reconstructions read
    assert (near_copy.max_hash_distance, near_copy.min_similarity, realism.min_psnr) == (4, 0.9, 20.0)
    realism_only = guard_from({**config, "fidelity_checks": ["realism"]}, catalog, embed=None,
                              reconstruct=blur_reconstruct)
    assert realism_only(catalog.images[1:3]).passed.tolist() == [True, True]


@pytest.mark.parametrize("checks, message", [
    (["near_copy", "nsfw"],
     r"fidelity_checks: unknown check\(s\) \['nsfw'\]; accepted: near_copy, realism, neighbours, safety"),
    ("near_copy", "fidelity_checks must be a list of check names"),
    (["safety"], "fidelity_checks lists 'safety' but fidelity_safety_model is None"),
    (["realism"], "fidelity_checks lists 'realism' but build_guard got no reconstruct"),
    (["near_copy"], "fidelity_copy_hash_distance or fidelity_copy_similarity is None, which calibrates it .* "
                    "but none were given"),
])
def test_build_guard_refuses_bad_settings(checks, message):
    with pytest.raises(ValueError, match=message):
        guard_from({**CONFIG, "fidelity_checks": checks}, make_catalog())

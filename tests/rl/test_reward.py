"""Reward terms and the best-of-N reranker on hand-made embeddings."""

import pytest
import torch
import torch.nn.functional as F
from recbole.data.interaction import Interaction

from recbole_gen.model.sequential_recommender.genrec import Generation
from recbole_gen.rl.reranker import best_of_n, expected_embedding, generate_best_of_n
from recbole_gen.rl.reward import RewardEnsemble, RewardModel

E = torch.eye(3)
CATALOG = torch.cat([torch.zeros(1, 3), E])  # row 0 padding; items 1..3 = e0..e2
HAS_CONTENT = torch.tensor([False, True, True, True])


class PixelEncoder:
    """Embeds a (N, 3, 1, 1) image as its unit-normalised pixel."""

    def encode_images(self, images):
        return F.normalize(images.float().flatten(1), dim=1)


def images(*vectors):
    return torch.stack([torch.as_tensor(v, dtype=torch.float) for v in vectors]).view(-1, 3, 1, 1)


class SwappedEncoder(PixelEncoder):
    """Another space: the pixel with its first two channels swapped."""

    def encode_images(self, images):
        return super().encode_images(images)[:, [1, 0, 2]]


def reward_model(encoder=None, **weights):
    encoder = encoder or PixelEncoder()
    catalog = encoder.encode_images(CATALOG.view(-1, 3, 1, 1)) * HAS_CONTENT.unsqueeze(1)
    return RewardModel(encoder, catalog, HAS_CONTENT, {"contrastive": 0.0, "realism": 0.0, "diversity": 0.0, "spread": 0.0, "fd": 0.0, "copy": 0.0, **weights},
                       expectation_top_items=1)


def top_item_scores(*items):
    """User-encoder scores (padding, items 1..3) of rows whose top item is each of ``items``."""
    return torch.stack([F.one_hot(torch.tensor(item), 4).float() for item in items])


def generation(*vectors):
    pictures = images(*vectors)
    return Generation(codes=torch.zeros(len(pictures), 4, dtype=torch.long), images=pictures)


def test_contrastive_reward_pays_for_the_own_target_and_nothing_for_one_image_for_everyone():
    model = reward_model(contrastive=1.0)
    targets = torch.tensor([[1], [2]])  # row 0's next item e0, row 1's e1; groups of one sample
    personal = model(generation(E[0], E[1]), torch.zeros(2, dtype=torch.bool), targets, 1)
    assert personal.total.tolist() == pytest.approx([1.0, 1.0])  # own cos 1, the other row's target 0
    prototype = model(generation(E[0] + E[1], E[0] + E[1]), torch.zeros(2, dtype=torch.bool), targets, 1)
    assert prototype.total.tolist() == pytest.approx([0.0, 0.0])


def test_contrastive_reward_averages_a_rows_future_items_and_skips_padding():
    model = reward_model(contrastive=1.0)
    targets = torch.tensor([[1, 2, 0], [3, 0, 0]])  # row 0: e0 then e1 (then none); row 1: e2
    rewards = model(generation(E[0], E[2]), torch.zeros(2, dtype=torch.bool), targets, 1)
    # row 0's sample e0: mean cosine to its targets (1 + 0)/2, to row 1's 0; row 1's e2: 1 against (0 + 0)/2
    assert rewards.total.tolist() == pytest.approx([0.5, 1.0])


def test_copy_penalty_realism_and_diversity():
    copied = torch.tensor([True, False])
    model = reward_model(copy=0.5)
    assert model(generation(E[0], E[1]), copied, torch.tensor([[1]]), 2).total.tolist() == [-0.5, 0.0]
    diverse = reward_model(diversity=1.0)(generation(E[0], E[1], E[2], E[2]), torch.zeros(4, dtype=torch.bool), torch.tensor([[1], [2]]), 2)
    assert diverse.total.tolist() == pytest.approx([1.0, 1.0, 0.0, 0.0])  # group 0 orthogonal, group 1 identical
    realism = reward_model(realism=1.0)(generation(E[0]), torch.zeros(1, dtype=torch.bool), torch.tensor([[1]]), 1)
    assert realism.total.item() == pytest.approx(1 / 3)  # mean over the 3 (< 10) catalog items of cos 1, 0, 0


def test_spread_pays_an_image_unlike_the_other_users_images_and_ignores_its_own_group():
    model = reward_model(spread=1.0)
    # row 0 draws e0 twice, row 1 draws e0 and e1: row 1's e0 looks like all of row 0's images, its e1 like none
    spread = model(generation(E[0], E[0], E[0], E[1]), torch.zeros(4, dtype=torch.bool), torch.tensor([[1], [2]]), 2)
    assert spread.terms["spread"].tolist() == pytest.approx([0.5, 0.5, 0.0, 1.0])
    one_row = model(generation(E[0], E[0]), torch.zeros(2, dtype=torch.bool), torch.tensor([[1]]), 2)
    assert "spread" not in one_row.terms  # no other rows to compare with


def test_fd_term_pays_the_sample_that_brings_the_batch_towards_the_catalogs_spread_and_sees_no_target():
    model = reward_model(fd=1.0)
    # three samples pile onto e0, one is e1; the catalog spreads evenly over e0, e1, e2
    batch = generation(E[0], E[0], E[0], E[1])
    rewards = model(batch, torch.zeros(4, dtype=torch.bool), torch.tensor([[1], [2]]), 2)
    fd = rewards.terms["fd"]
    assert fd[3] > fd[0] and fd[0] == pytest.approx(fd[1]) == pytest.approx(fd[2].item())
    assert rewards.total.tolist() == pytest.approx(fd.tolist())
    assert model(batch, torch.zeros(4, dtype=torch.bool), torch.tensor([[3], [3]]), 2).terms["fd"].tolist() == pytest.approx(fd.tolist())
    balanced = model(generation(E[0], E[1], E[2], E[0], E[1], E[2]), torch.zeros(6, dtype=torch.bool), torch.tensor([[1], [2], [3]]), 2)
    assert balanced.terms["fd"].max() < fd[3]  # once the batch spreads like the catalog, a sample adds less


def test_expectation_term_is_the_cosine_to_each_rows_expected_embedding():
    model = reward_model(expectation=1.0)
    rewards = model(generation(E[0], E[1], E[2], E[2]), torch.zeros(4, dtype=torch.bool), torch.tensor([[1], [2]]), 2,
                    scores=top_item_scores(1, 3))  # row 0 expects e0, row 1 e2
    assert rewards.total.tolist() == pytest.approx([1.0, 0.0, 1.0, 1.0])


def test_contrasted_expectation_pays_nothing_for_one_image_for_everyone():
    model = reward_model(expectation=1.0)
    model.expectation_contrast = True
    scores = top_item_scores(1, 3)
    personal = model(generation(E[0], E[2]), torch.zeros(2, dtype=torch.bool), torch.tensor([[1], [3]]), 1, scores=scores)
    central = model(generation(E[0] + E[2], E[0] + E[2]), torch.zeros(2, dtype=torch.bool), torch.tensor([[1], [3]]), 1, scores=scores)
    assert personal.total.tolist() == pytest.approx([1.0, 1.0]) and central.total.tolist() == pytest.approx([0.0, 0.0])


def test_expectation_aimed_at_the_nearest_catalog_item_pays_the_item_not_the_blend():
    scores = torch.tensor([[0.0, 2.0, 1.0, -1.0]])  # one row; its top 2 items: e0 ahead of e1
    blend = F.normalize(torch.tensor([2.0, 1.0, 0.0]).softmax(dim=0) * torch.tensor([1.0, 1.0, 0.0]), dim=0)
    samples, copied, targets = generation(blend, E[0]), torch.zeros(2, dtype=torch.bool), torch.tensor([[1]])
    to_blend = reward_model(expectation=1.0)
    to_blend.expectation_top_items = 2
    assert to_blend(samples, copied, targets, 2, scores=scores).total.tolist() == pytest.approx([1.0, blend[0].item()])
    to_item = reward_model(expectation=1.0)
    to_item.expectation_top_items, to_item.expectation_nearest_item = 2, True
    assert to_item(samples, copied, targets, 2, scores=scores).total.tolist() == pytest.approx([blend[0].item(), 1.0])


def test_best_of_n_keeps_the_sample_closest_to_the_expected_embedding():
    model = reward_model()
    # two users, one shown image each, best of 3: user 0 expects e1, user 1 expects e2
    candidates = generation(E[0], E[1] + 0.1 * E[0], E[2], E[2] + E[0], E[0], E[1])
    candidates.codes = torch.arange(6).unsqueeze(1)
    kept = best_of_n(candidates, torch.stack([E[1], E[2]]), model, 3)
    assert kept.codes.flatten().tolist() == [1, 3]


class SampledUsers:
    """A generator whose sample j of user u is a random picture seeded by (seed, u, j), with codes ``[u, j]``, and
    whose user encoder scores the catalog by a random vector seeded by u; it records each call's rows."""

    def __init__(self):
        self.user_encoder = self
        self.calls = []

    def generate(self, interaction, num_samples, seed):
        users = interaction["user_id"].tolist()
        self.calls.append(len(users))
        draws = [torch.rand(3, generator=torch.Generator().manual_seed(seed * 10_000 + u * 100 + j)) for u in users for j in range(num_samples)]
        codes = torch.tensor([[u, j] for u in users for j in range(num_samples)])
        return Generation(codes=codes, images=images(*draws))

    def full_sort_predict(self, interaction):
        return torch.stack([torch.rand(12, generator=torch.Generator().manual_seed(u)) for u in interaction["user_id"].tolist()])


def test_best_of_n_in_chunks_of_rows_holds_a_plain_batch_and_keeps_what_one_draw_would():
    model = SampledUsers()
    catalog = F.normalize(torch.rand(12, 3, generator=torch.Generator().manual_seed(0)), dim=1)  # more than the top 10 items
    has_content = torch.arange(12) > 0
    rewards = RewardModel(PixelEncoder(), catalog * has_content.unsqueeze(1), has_content, {"expectation": 1.0})
    interaction = Interaction({"user_id": torch.arange(1, 6)})
    kept = generate_best_of_n(model, rewards, interaction, samples=2, n=3, seed=4)
    assert model.calls == [2, 2, 1]  # ceil(5 / 3) rows at a time: 2 x 2 x 3 = 12 samples, against 5 x 2 = 10 for plain sampling
    at_once = best_of_n(model.generate(interaction, 6, seed=4), expected_embedding(model, rewards, interaction), rewards, 3)
    assert torch.equal(kept.codes, at_once.codes) and torch.equal(kept.images, at_once.images)
    assert kept.codes[:, 0].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]  # each user's two shown images, in order
    assert kept.codes[:, 1].tolist() != [0, 3] * 5  # the pick, not always each group's first sample


class ScoredUsers:
    """A model whose user encoder scores the catalog (padding, e0, e1, e2) with fixed scores per row."""

    def __init__(self, scores):
        self.user_encoder = self
        self.scores = torch.tensor(scores)

    def full_sort_predict(self, interaction):
        return self.scores.clone()


def test_expected_embedding_averages_the_top_items_by_their_score_softmax():
    model = ScoredUsers([[9.0, 3.0, 3.0 - torch.log(torch.tensor(3.0)).item(), 0.0]])  # padding never counts
    assert expected_embedding(model, reward_model(), None, top_items=1)[0].tolist() == pytest.approx([1.0, 0.0, 0.0])
    # softmax weights 3/4 and 1/4 on e0 and e1, unit-normalised
    top_two = F.normalize(torch.tensor([0.75, 0.25, 0.0]), dim=0)
    assert expected_embedding(model, reward_model(), None, top_items=2)[0].tolist() == pytest.approx(top_two.tolist())
    assert expected_embedding(model, reward_model(), None, top_items=3)[0, 2] > 0


def test_an_ensemble_aggregates_members_that_score_in_their_own_spaces():
    # one row, next item and top item 1; two samples: the picture e0 (item 1's) and e1 (item 2's)
    samples, copied, targets, scores = generation(E[0], E[1]), torch.zeros(2, dtype=torch.bool), torch.tensor([[1]]), top_item_scores(1)
    pixel = reward_model(contrastive=1.0, expectation=1.0)
    swapped = reward_model(SwappedEncoder(), contrastive=1.0, expectation=1.0)  # other space, same verdict
    disagreeing = reward_model(contrastive=1.0, expectation=1.0)
    disagreeing.catalog = disagreeing.catalog[:, [1, 0, 2]]  # a fit that embeds item 1 where the others embed item 2
    totals = [member(samples, copied, targets, 2, scores).total.tolist() for member in (pixel, swapped, disagreeing)]
    assert totals == [pytest.approx([2.0, 0.0])] * 2 + [pytest.approx([0.0, 2.0])]  # contrastive 1 + expectation 1
    for aggregate, total in (("mean", [4 / 3, 2 / 3]), ("min", [0.0, 0.0])):
        rewards = RewardEnsemble([pixel, swapped, disagreeing], aggregate)(samples, copied, targets, 2, scores)
        assert rewards.total.tolist() == pytest.approx(total)
        assert rewards.terms["contrastive"].tolist() == pytest.approx([2 / 3, 1 / 3])  # the members' mean, unweighted
        assert rewards.member_sd.tolist() == pytest.approx([torch.tensor([2.0, 2.0, 0.0]).std(unbiased=False).item()] * 2)


def test_an_ensemble_refuses_an_unknown_aggregate():
    with pytest.raises(ValueError, match="'rl_reward_ensemble_aggregate' = 'median': expected one of"):
        RewardEnsemble([reward_model()], "median")

"""GenRecPipeline: the instructor's choice, the editor, feedback and the fidelity guard's fallback."""

import pytest
import torch

from recbole_gen.fidelity.checks import NeighbourCheck, Verdict
from recbole_gen.fidelity.guard import FidelityGuard
from recbole_gen.pipeline import GenRecPipeline, item_crops

from model.test_genrec import build, first_batch, train_steps


@pytest.fixture
def trained(genrec_config):
    config, model, train_data, test_data = build(genrec_config)
    train_steps(model, train_data, 5)
    return config, model.eval(), first_batch(test_data)[torch.arange(6)]


def pipeline(config, model, guard=None, **overrides):
    return GenRecPipeline(model, {**config.final_config_dict, **overrides}, ["text"] * model.n_items, guard=guard)


def test_the_instructor_shows_the_top_item_when_sure_and_creates_when_not(trained):
    config, model, interaction = trained
    shown = pipeline(config, model, instructor_show_threshold=0.0)(interaction, num_candidates=2)
    top = model.user_encoder.full_sort_predict(interaction)
    top[:, ~model.has_image] = -torch.inf
    top[:, 0] = -torch.inf
    assert shown.actions == ["show"] * 6 and torch.equal(shown.shown_items, top.argmax(dim=1).cpu())
    assert torch.equal(shown.images, model.tokenizer.decode(model.item_codes[top.argmax(dim=1)]))
    # nothing is sampled for a request answered with a catalog item
    assert len(shown.candidates.codes) == 0 and not shown.has_candidates.any() and (shown.chosen == -1).all()
    created = pipeline(config, model, instructor_show_threshold=2.0, instructor_edit_threshold=2.0)(interaction, num_candidates=2)
    assert created.actions == ["create"] * 6 and (created.shown_items == 0).all() and (created.source_items == 0).all()
    assert torch.equal(created.images, created.candidates.images[created.chosen])


def test_create_serves_every_request_with_the_creator_where_the_rule_would_show_a_catalog_item(trained):
    config, model, interaction = trained
    serve = pipeline(config, model, instructor_show_threshold=0.0)
    forced = serve(interaction, num_candidates=2, seed=3, create=True)
    assert forced.actions == ["create"] * 6 and forced.has_candidates.all() and (forced.source_items == 0).all()
    assert torch.equal(forced.images, forced.candidates.images[forced.chosen])
    # the same images the rule gives when it creates by itself
    created = pipeline(config, model, instructor_show_threshold=2.0, instructor_edit_threshold=2.0)(interaction, num_candidates=2, seed=3)
    assert torch.equal(forced.images, created.images)
    # an explicit edit request stays an edit
    edited = serve(interaction, edit_items=torch.tensor([1, 0, 0, 0, 0, 0]), num_candidates=2, create=True)
    assert edited.actions == ["edit"] + ["create"] * 5


def test_editing_at_strength_zero_returns_the_item_and_the_guard_falls_back_when_nothing_passes(trained):
    config, model, interaction = trained
    items = torch.full((6,), 5)
    edited = pipeline(config, model)(interaction, edit_items=items, strength=0.0, num_candidates=2)
    assert edited.actions == ["edit"] * 6 and (edited.source_items == 5).all()
    assert (edited.candidates.codes == model.item_codes[5]).all()
    catalog = torch.nn.functional.normalize(torch.randn(model.n_items, 4), dim=-1)
    never = FidelityGuard([NeighbourCheck(catalog, model.has_image.cpu(), neighbours=3, min_score=2.0)],
                          embed=lambda images: torch.nn.functional.normalize(images.float().flatten(1)[:, :4] + 1, dim=-1))
    guarded = pipeline(config, model, guard=never, instructor_show_threshold=2.0, instructor_edit_threshold=2.0)(interaction, num_candidates=2)
    assert guarded.fallback.all() and guarded.actions == ["show"] * 6 and (guarded.shown_items > 0).all()
    assert len(guarded.verdicts["neighbours"]) == 12 and not any(v.passed for v in guarded.verdicts["neighbours"])


def test_feedback_changes_what_is_created(trained):
    config, model, interaction = trained
    serve = pipeline(config, model, instructor_show_threshold=2.0, instructor_edit_threshold=2.0, feedback_weight=10.0,
                     feedback_guidance_scale=20.0)
    plain = serve(interaction, num_candidates=2, seed=1).candidates.codes
    liked = serve(interaction, like=[[3, 8]] * 6, num_candidates=2, seed=1).candidates.codes
    disliked = serve(interaction, dislike=[[3, 8]] * 6, num_candidates=2, seed=1).candidates.codes
    assert not torch.equal(liked, plain) and not torch.equal(disliked, plain)


def test_an_instruction_for_a_model_without_an_instructor_is_refused(trained):
    config, model, interaction = trained
    with pytest.raises(ValueError, match="n_instruction_tokens"):
        pipeline(config, model)(interaction, instructions=["a comedy"] * 6)


def test_an_instruction_is_followed_with_guidance_from_the_uninstructed_request(genrec_config):
    from model.test_instructor import instructor_config

    config, model, train_data, test_data = build(instructor_config(genrec_config))
    train_steps(model, train_data, 5)
    model.eval()
    interaction = first_batch(test_data)[torch.arange(4)]
    texts = ["a horror"] * 4
    serve = dict(instructor_show_threshold=2.0, instructor_edit_threshold=2.0, instructor_match_threshold=-2.0)
    unguided = pipeline(config, model, instruction_guidance_scale=1.0, **serve)(interaction, instructions=texts, num_candidates=2, seed=3)
    instructed = model.condition_tokens(interaction, instruction=model.instructor.embed(texts)).repeat_interleave(2, dim=0)
    assert torch.equal(unguided.candidates.codes, model.sample(instructed, model.uniforms(interaction, 2, 3)))
    guided = pipeline(config, model, instruction_guidance_scale=20.0, **serve)(interaction, instructions=texts, num_candidates=2, seed=3)
    assert not torch.equal(guided.candidates.codes, unguided.candidates.codes)


def test_only_requests_not_shown_a_catalog_item_get_candidates_in_request_order(trained):
    config, model, interaction = trained
    edited = torch.tensor([5, 0, 7, 0, 0, 0])
    served = pipeline(config, model, instructor_show_threshold=0.0)(interaction, edit_items=edited, num_candidates=3, seed=4)
    assert served.actions == ["edit", "show", "edit", "show", "show", "show"]
    assert served.has_candidates.tolist() == [True, False, True, False, False, False]
    assert len(served.candidates.codes) == 6 and served.chosen.tolist()[1:] == [-1, served.chosen[2].item(), -1, -1, -1]
    assert 0 <= served.chosen[0] < 3 <= served.chosen[2] < 6
    alone = pipeline(config, model, instructor_show_threshold=0.0)(interaction[torch.tensor([2])], edit_items=edited[2:3], num_candidates=3, seed=4)
    assert torch.equal(alone.candidates.codes, served.candidates.codes[3:])  # a request's candidates do not depend on the others


def quadrants(size=8):
    """One image whose top-left quadrant is red, the rest black."""
    image = torch.zeros(1, 3, size, size, dtype=torch.uint8)
    image[0, 0, : size // 2, : size // 2] = 255
    return image


def test_item_crops_cut_centre_corners_and_edges_resized_back():
    cut = item_crops(quadrants(), 9, scale=0.5)
    assert cut.shape == (1, 9, 3, 8, 8)
    assert (cut[0, 1, 0] == 255).all() and (cut[0, 1, 1:] == 0).all()  # top-left corner: all red
    assert (cut[0, [2, 3, 4]] == 0).all()  # the other corners: black
    centre = cut[0, 0, 0]
    assert centre[0, 0] == 255 and centre[-1, -1] == 0  # the centre straddles the quadrants
    assert torch.equal(item_crops(quadrants(), 1, scale=1.0)[0, 0], quadrants()[0])
    with pytest.raises(ValueError, match="k=10 crops per image; accepted 1 to 9"):
        item_crops(quadrants(), 10)
    with pytest.raises(ValueError, match=r"scale=0; accepted \(0, 1\]"):
        item_crops(quadrants(), 2, scale=0)


class AlwaysCopy:
    """A near-copy check that flags every image."""

    name, uses_embeddings = "near_copy", False

    def __call__(self, images, embeddings=None):
        return [Verdict(passed=False, score=1.0, reason="near copy") for _ in images]


def test_selection_mode_ranks_crops_of_the_item_and_waives_the_near_copy_check_for_them(trained):
    config, model, interaction = trained
    items = torch.full((6,), 5)
    serve = pipeline(config, model, guard=FidelityGuard([AlwaysCopy()]))
    cropped = serve(interaction, edit_items=items, num_candidates=4, crops=True, crop_scale=0.5)
    expected = item_crops(model.tokenizer.decode(model.item_codes[5:6]), 4, 0.5)[0]
    assert torch.equal(cropped.candidates.images, expected.repeat(6, 1, 1, 1))
    assert cropped.actions == ["edit"] * 6 and not cropped.fallback.any()
    assert torch.equal(cropped.images, cropped.candidates.images[cropped.chosen])
    assert not any(verdict.passed for verdict in cropped.verdicts["near_copy"])  # recorded, but waived
    sampled = serve(interaction, edit_items=items, num_candidates=4)  # sampled variants get no waiver
    assert sampled.fallback.all() and sampled.actions == ["show"] * 6

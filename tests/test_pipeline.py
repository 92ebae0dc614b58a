"""GenRecPipeline: the instructor's choice, the editor, feedback and the fidelity guard's fallback."""

import pytest
import torch

from recbole_gen.fidelity.checks import NeighbourCheck
from recbole_gen.fidelity.guard import FidelityGuard
from recbole_gen.pipeline import GenRecPipeline

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
    created = pipeline(config, model, instructor_show_threshold=2.0, instructor_edit_threshold=2.0)(interaction, num_candidates=2)
    assert created.actions == ["create"] * 6 and (created.shown_items == 0).all() and (created.source_items == 0).all()
    assert torch.equal(created.images, created.candidates.images[created.chosen])


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

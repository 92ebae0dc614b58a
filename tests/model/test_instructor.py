"""The instructor: synthesised instructions, instruction tokens, feedback and the show/edit/create rule."""

import random

import torch
import torch.nn.functional as F

from recbole_gen.model.instructor import N_VARIANTS, decide, feedback_user, synthesise_instructions
from recbole_gen.quick_start import load_data_and_model, run_recbole_gen

from model.test_genrec import build, first_batch, train_steps


def instructor_config(genrec_config):
    return {**genrec_config, "n_instruction_tokens": 2, "rl_reward_fit_epochs": 2, "instruction_dropout_prob": 0.3}


def test_instructions_are_synthesised_from_the_items_own_fields():
    texts = synthesise_instructions(["Comedy", "Romance"], 1994, "Four Weddings and a Funeral (1994)", random.Random(0))
    assert len(texts) == N_VARIANTS
    assert texts[0] == "a comedy and romance from the 1990s"
    assert texts[1] in ("a comedy", "a romance") and texts[2] == "something from the 1990s"
    assert any(word in texts[3] for word in ("weddings", "four", "funeral"))


def test_the_bank_holds_each_items_instructions_and_an_instruction_changes_the_sample(genrec_config):
    config, model, train_data, test_data = build(instructor_config(genrec_config))
    bank = model.instructor.bank
    assert bank.shape[:2] == (model.n_items, N_VARIANTS)
    assert bank[0].abs().sum() == 0 and (bank[1:].norm(dim=-1) > 0.99).all()  # padding has none; items have unit embeddings
    train_steps(model, train_data, 10)
    model.eval()
    interaction = first_batch(test_data)
    uniforms = model.uniforms(interaction, 1, seed=4)
    plain = model.sample(model.condition_tokens(interaction), uniforms)
    none = model.instructor.embed([None] * len(interaction))
    assert torch.equal(model.sample(model.condition_tokens(interaction, instruction=none), uniforms), plain)
    asked = model.instructor.embed(["a horror from the 1960s"] * len(interaction))
    instructed = model.condition_tokens(interaction, instruction=asked)
    codes = model.item_codes[interaction[model.ITEM_ID]]
    shift = (model.code_logits(instructed, codes) - model.code_logits(model.condition_tokens(interaction), codes)).abs().max()
    assert shift > 1e-3
    # guided by the instruction against the same request without it, the samples change
    guided = model.generation_config.to_dict() | {"guidance_scale": 20.0}
    from transformers import GenerationConfig

    uninstructed = model.condition_tokens(interaction, instruction=none)
    assert not torch.equal(model.sample(instructed, uniforms, GenerationConfig(**guided), negative=uninstructed), plain)


def test_liked_items_pull_the_user_and_rows_without_feedback_stay():
    torch.manual_seed(0)
    user, items = torch.randn(3, 8), torch.randn(10, 8)
    liked = torch.tensor([[4, 5], [7, 0], [0, 0]])
    moved = feedback_user(user, items, liked, 0.5)
    target = F.normalize(items[4] + items[5], dim=-1)
    assert F.cosine_similarity(moved[0], target, dim=0) > F.cosine_similarity(user[0], target, dim=0)
    assert F.cosine_similarity(moved[1], items[7], dim=0) > F.cosine_similarity(user[1], items[7], dim=0)
    assert torch.equal(moved[2], user[2])


def test_the_rule_shows_edits_or_creates_by_the_thresholds():
    nan = float("nan")
    actions = decide(torch.tensor([0.5, 0.1, 0.01, 0.9, 0.9]), torch.tensor([nan, nan, nan, 0.1, 0.8]),
                     show_threshold=0.2, edit_threshold=0.05, match_threshold=0.3)
    assert actions == ["show", "edit", "create", "create", "show"]


def test_an_instructor_checkpoint_round_trips_without_the_encoder_cache(genrec_config, tiny_dataset):
    import shutil

    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict={**instructor_config(genrec_config), "epochs": 1,
                                                                            "metrics": ["Recall"], "valid_metric": "Recall@10"})
    model = result["trainer"].model.eval()
    shutil.rmtree(tiny_dataset / "encoder_cache")
    _, loaded, _, _, _, test_data = load_data_and_model(result["trainer"].saved_model_file)
    loaded.eval()
    interaction = first_batch(test_data)
    text = ["a drama from the 1970s"] * len(interaction)
    for m in (model, loaded):
        m.sampled = m.sample(m.condition_tokens(interaction, instruction=m.instructor.embed(text)), m.uniforms(interaction, 1, 5))
    assert torch.equal(model.sampled, loaded.sampled)

"""GenRec on a tiny dataset with tiny tokenizer, generator and user encoder, all built in the test."""

import math

import pytest
import torch
import torch.nn.functional as F
from recbole.data import create_dataset, data_preparation
from recbole.utils import init_seed
from transformers import GenerationConfig

from recbole_gen.config import Config
from recbole_gen.data.item_content import item_content
from recbole_gen.evaluator.image_quality import blur_ratio, pixel_fidelity
from recbole_gen.model.sampling import split_seed
from recbole_gen.model.sequential_recommender.genrec import GenRec
from recbole_gen.quick_start import load_data_and_model, run_recbole_gen

from conftest import tiny_janus

def build(config_dict):
    config = Config(model="GenRec", dataset="tiny", config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    train_data, valid_data, test_data = data_preparation(config, create_dataset(config))
    return config, GenRec(config, train_data._dataset), train_data, test_data


def first_batch(data):
    batch = next(iter(data))
    return batch[0] if isinstance(batch, tuple) else batch


def train_steps(model, train_data, steps, lr=0.01):
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
    model.train()
    batch = first_batch(train_data)
    losses = []
    for _ in range(steps):
        loss = model.calculate_loss(batch)
        loss = sum(loss) if isinstance(loss, tuple) else loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_generation_loss_falls(genrec_config):
    _, model, train_data, _ = build({**genrec_config, "cond_dropout_prob": 0.0})
    batch = first_batch(train_data)
    before = model.generation_loss(batch).item()
    train_steps(model, train_data, 20)
    model.eval()
    assert model.generation_loss(batch).item() < 0.8 * before


def test_generated_codes_and_images_have_the_right_shapes(genrec_config):
    _, model, _, test_data = build(genrec_config)
    interaction = first_batch(test_data)
    generation = model.eval().generate(interaction, num_samples=3, seed=0)
    n = 3 * len(interaction)
    assert model.tokenizer.n_tokens == 64  # 16 px, 2x downsampling: 8 x 8 codes
    assert generation.codes.shape == (n, 64)
    assert generation.codes.min() >= 0 and generation.codes.max() < 16
    assert generation.images.shape == (n, 3, 16, 16) and generation.images.dtype == torch.uint8
    scores = model.full_sort_predict(interaction)
    assert scores.shape == (len(interaction), model.n_items)


def test_guidance_zero_is_unconditional_sampling(genrec_config):
    _, model, train_data, test_data = build(genrec_config)
    train_steps(model, train_data, 5)
    model.eval()
    condition = model.condition_tokens(first_batch(test_data))
    null = model.condition.null_condition(len(condition))

    def sample(cond, scale, seed=7):
        config = GenerationConfig(do_sample=True, temperature=1.0, top_k=0, guidance_scale=scale, max_new_tokens=64)
        return model.sample_codes(cond, torch.rand(len(cond), 64, generator=torch.Generator().manual_seed(seed)), config)

    unconditional = sample(null, 1.0)
    assert torch.equal(sample(condition, 0.0), unconditional)
    # and the users' conditions do change what is sampled once guidance is on (a large scale, since a
    # barely trained model's conditional and unconditional logits differ by only a few hundredths)
    assert not torch.equal(sample(condition, 20.0), unconditional)


def test_the_generators_kv_cache_carries_the_context(genrec_config):
    """Sampling decodes one code at a time through the transformer's KV cache (its argument was renamed in
    transformers 5): the last position's hidden state is the same with the cache as in one full pass."""
    _, model, _, _ = build(genrec_config)
    generator = model.generator.eval()
    inputs = torch.randn(2, 6, generator.hidden_size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        whole, _ = generator(inputs)
        _, cache = generator(inputs[:, :-1], use_cache=True)
        last, _ = generator(inputs[:, -1:], cache, use_cache=True)
    assert torch.allclose(last[:, 0], whole[:, -1], atol=1e-5)


def test_checkpoint_round_trip_gives_identical_samples(genrec_config):
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict={**genrec_config, "epochs": 1})
    model = result["trainer"].model.eval()
    _, loaded, _, _, _, test_data = load_data_and_model(result["trainer"].saved_model_file)
    interaction = first_batch(test_data)
    before = model.generate(interaction, num_samples=2, seed=3)
    after = loaded.eval().generate(interaction, num_samples=2, seed=3)
    assert torch.equal(before.codes, after.codes)
    assert torch.equal(before.images, after.images)


def trainer_test_data(trainer):
    return data_preparation(trainer.config, create_dataset(trainer.config))[2]


def test_a_users_samples_depend_on_neither_batch_nor_batch_size(genrec_config):
    _, model, _, test_data = build(genrec_config)
    model.eval()
    batch = first_batch(test_data)
    together = model.generate(batch, num_samples=3, seed=11).codes.view(len(batch), 3, -1)
    alone = model.generate(batch[torch.tensor([4])], num_samples=3, seed=11).codes
    assert torch.equal(together[4], alone)
    assert not torch.equal(together[4], model.generate(batch[torch.tensor([4])], num_samples=3, seed=12).codes)
    assert not torch.equal(together[4, 0], together[4, 1])  # the samples of a user differ from each other


def test_run_scores_k_generated_images_per_user_and_writes_galleries(genrec_config):
    config = {**genrec_config, "epochs": 2, "eval_samples": 3, "metrics": ["Recall", "NDCG", "TargetSim", "FD"],
              "valid_metric": "TargetSim", "metric_decimal_place": 6}
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)
    trainer = result["trainer"]
    # two validations and the test, each with a gallery
    assert [path.rsplit("-", 1)[-1] for path in trainer.gallery_files] == ["epoch000.png", "epoch001.png", "test.png"]
    # TargetSim: each test user's 3 generated images (not catalog items) against the next item, averaged
    catalog = trainer.catalog.embeddings
    model = trainer.model.eval()
    test_seed = split_seed(trainer.config["eval_seed"], "test")
    assert test_seed != split_seed(trainer.config["eval_seed"], "valid")
    sims, images = [], []
    with torch.no_grad():
        for interaction, _, _, positive_i in trainer_test_data(trainer):
            generation = model.generate(interaction, num_samples=3, seed=test_seed)
            generated = trainer.catalog.encoder.encode_images(generation.images).view(len(interaction), 3, -1)
            assert (generated.flatten(0, 1) @ catalog.T).max() < 0.9999
            sims.append((generated * catalog[positive_i].unsqueeze(1)).sum(-1).mean(1))
            images.append(generation.images)
    assert abs(torch.cat(sims).mean().item() - result["test_result"]["targetsim"]) < 1e-5
    # the blur ratio: the shown images' sharpness over the catalog's, both at the tokenizer's 16 px
    content = item_content(trainer.config, trainer_test_data(trainer)._dataset)
    catalog_images = F.interpolate(content.images[model.has_image].float(), size=(16, 16), mode="area").round().to(torch.uint8)
    assert result["test_result"]["blurratio"] == pytest.approx(blur_ratio(torch.cat(images), catalog_images), rel=1e-4)
    ceiling = trainer.ceiling_result
    assert ceiling["recall@10"] == 1.0  # the oracle's own reconstruction is nearest to its target
    reconstructions = model.tokenizer.decode(model.item_codes[model.has_image])
    assert ceiling["tokenizer.ssim"] == pytest.approx(pixel_fidelity(catalog_images, reconstructions)["ssim"])
    assert 0 < ceiling["blurratio"] and 0 < ceiling["tokenizer.psnr"] and 0 < ceiling["tokenizer.ms_ssim"] <= 1


def test_sampled_evaluation_is_refused(genrec_config):
    with pytest.raises(ValueError, match="eval_args mode 'full'"):
        build({**genrec_config, "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "uni100"}})


@pytest.mark.parametrize("user_encoder", ["GRU4Rec", "BERT4Rec"])
def test_other_user_encoders_train(genrec_config, user_encoder):
    _, model, train_data, _ = build({**genrec_config, "user_encoder": user_encoder})
    assert type(model.user_encoder).__name__ == user_encoder
    losses = train_steps(model, train_data, 2)
    assert all(loss == loss for loss in losses)  # finite, both losses computed


def test_user_encoder_checkpoint_loads_and_can_be_frozen(genrec_config):
    sasrec = run_recbole_gen(model="SASRec", dataset="tiny", config_dict={**genrec_config, "epochs": 1, "metrics": ["Recall"], "valid_metric": "Recall@10"})
    path = sasrec["trainer"].saved_model_file
    _, model, train_data, _ = build({**genrec_config, "user_encoder_checkpoint": path, "freeze_user_encoder": True})
    expected = sasrec["trainer"].model.state_dict()
    for key, value in model.user_encoder.state_dict().items():
        assert torch.equal(value, expected[key]), key
    train_steps(model, train_data, 2)
    for key, value in model.user_encoder.state_dict().items():
        assert torch.equal(value, expected[key]), f"{key} changed although frozen"


def test_user_encoder_checkpoint_of_another_model_is_refused(genrec_config):
    gru = run_recbole_gen(model="GRU4Rec", dataset="tiny", config_dict={**genrec_config, "epochs": 1, "metrics": ["Recall"], "valid_metric": "Recall@10"})
    with pytest.raises(ValueError, match="holds a GRU4Rec, but user_encoder is SASRec"):
        build({**genrec_config, "user_encoder_checkpoint": gru["trainer"].saved_model_file})


@pytest.mark.parametrize("lora", [0, 4])
def test_tiny_janus_trains_a_step_and_generates(genrec_config, tiny_dataset, lora):
    path = tiny_dataset / "janus"
    tiny_janus(path)
    _, model, train_data, test_data = build({**genrec_config, "generator_path": str(path), "generator_lora_r": lora})
    assert type(model.generator).__name__ == "JanusGenerator"
    assert model.tokenizer.n_tokens == 16 and model.tokenizer.codebook_size == 32
    head = model.generator.janus.model.generation_head.vision_head.weight.clone()
    losses = train_steps(model, train_data, 1)
    assert losses[0] == losses[0]
    changed = not torch.equal(head, model.generator.janus.model.generation_head.vision_head.weight)
    assert changed == (lora == 0)  # with LoRA only the adapters (and GenRec's own modules) train
    if lora:
        assert any("lora_" in name for name, p in model.named_parameters() if p.requires_grad)
    generation = model.eval().generate(first_batch(test_data), num_samples=1, seed=0)
    assert generation.codes.shape[1] == 16 and generation.images.shape[1:] == (3, 8, 8)


def test_generator_path_that_is_not_a_model_folder_is_named(genrec_config, tiny_dataset):
    with pytest.raises(FileNotFoundError, match="generator_path"):
        build({**genrec_config, "generator_path": str(tiny_dataset)})


@pytest.mark.parametrize("user_encoder", ["SASRec", "GRU4Rec", "BERT4Rec"])
def test_recommendation_loss_is_the_encoders_own(genrec_config, user_encoder):
    from recbole_gen.model.user_encoder import recommendation_loss, user_embedding

    _, model, train_data, _ = build({**genrec_config, "user_encoder": user_encoder})
    encoder = model.user_encoder.eval()  # no dropout: both paths see the same network
    batch = first_batch(train_data)
    torch.manual_seed(0)  # BERT4Rec draws its masked positions
    expected = encoder.calculate_loss(batch)
    torch.manual_seed(0)
    user = user_embedding(encoder, batch[model.ITEM_SEQ], batch[model.ITEM_SEQ_LEN])
    assert torch.allclose(recommendation_loss(encoder, user, batch), expected, atol=1e-5)


def test_a_split_is_scored_from_its_own_stream_inside_and_outside_training(genrec_config):
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "metrics": ["Recall", "TargetSim", "PersonalLift"],
              "valid_metric": "TargetSim"}
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)
    trainer = result["trainer"]
    _, valid_data, _ = data_preparation(trainer.config, create_dataset(trainer.config))
    again = trainer.evaluate(valid_data, load_best_model=True, split="valid")
    assert dict(again) == dict(result["best_valid_result"])  # the validation that chose the checkpoint, reproduced
    as_test = trainer.evaluate(valid_data, load_best_model=False, split="test")
    assert as_test["targetsim"] != again["targetsim"]  # the test stream draws other images


def test_the_generators_positions_follow_the_tokenizers_code_count(genrec_config):
    # one more tokenizer block halves the image side per code: 16 px at 2x downsampling = 64 codes, at 4x = 16
    for channels, codes in (([8, 16], 64), ([8, 16, 16], 16)):
        _, model, train_data, _ = build({**genrec_config, "tokenizer_block_out_channels": channels})
        assert model.tokenizer.n_tokens == codes
        assert model.generator.lm.config.max_position_embeddings == 2 + 2 + codes  # user tokens, history images, codes
        assert math.isfinite(train_steps(model, train_data, 1)[0])
    with pytest.raises(ValueError, match="'gen_max_positions' = 10 is below the 68 positions"):
        build({**genrec_config, "gen_max_positions": 10})

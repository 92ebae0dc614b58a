"""The item encoder: fitting on the catalog, the disk cache, and every way to load pretrained weights."""

import json
import os
from types import SimpleNamespace

import open_clip
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from recbole_gen.evaluator import encoder as encoder_module
from recbole_gen.evaluator.encoder import ItemEncoder, fitted_encoder_dir, load_item_encoder


def _content(n_items=12, size=32):
    generator = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (n_items, 3, size, size), dtype=torch.uint8, generator=generator)
    texts = [""] + [f"item {i} genre {i % 3}" for i in range(1, n_items)]
    has_image = torch.ones(n_items, dtype=torch.bool)
    has_image[0] = False
    tokens = ["[PAD]"] + [f"i{i}" for i in range(1, n_items)]
    table = pd.DataFrame({"genre": [f"genre {i % 3}" for i in range(1, n_items)], "year": [str(1990 + i % 5) for i in range(1, n_items)]},
                         index=tokens[1:])
    return SimpleNamespace(images=images, texts=texts, has_image=has_image, fingerprint=f"fake-{n_items}", tokens=tokens, table=table)


def _config(tmp_path, **overrides):
    config = {
        "eval_encoder": "fit",
        "eval_encoder_pretrained": None,
        "encoder_cache_dir": str(tmp_path / "encoders"),
        "encoder_fit_model": "recbole-gen-tiny",
        "encoder_fit_epochs": 8,
        "encoder_fit_batch_size": 6,
        "encoder_fit_learning_rate": 1e-3,
        "encoder_fit_seed": 3,
        "encoder_fit_text_fields": None,
        "seed": 3,
        "show_progress": False,
        "device": "cpu",
    }
    config.update(overrides)
    return config


def test_fit_trains_caches_and_reloads(tmp_path, monkeypatch):
    config, content = _config(tmp_path), _content()
    first = load_item_encoder(config, content).encode_images(content.images)
    assert first.shape == (12, 128)
    assert torch.allclose(first.norm(dim=1), torch.ones(12), atol=1e-5)

    out_dir = fitted_encoder_dir(config, content)
    with open(os.path.join(out_dir, "fit_log.json")) as f:
        fit_log = json.load(f)
    losses = fit_log["loss_per_epoch"]
    assert losses[-1] < losses[0]
    # 11 items: chance top-1 is 1/11; the fitted space must tell them apart better than that.
    assert fit_log["image_to_text_retrieval"]["top1"] > 1 / 11

    def refit(*args):
        raise AssertionError("a cached encoder was fitted again")

    monkeypatch.setattr(encoder_module, "fit_encoder", refit)
    again = load_item_encoder(config, content).encode_images(content.images)
    assert torch.allclose(first, again, atol=1e-6)
    # The same folder works as a user-supplied local encoder.
    as_folder = load_item_encoder({**config, "eval_encoder": out_dir}, content).encode_images(content.images)
    assert torch.allclose(first, as_folder, atol=1e-6)


def test_cache_key_follows_content_and_settings(tmp_path):
    config = _config(tmp_path)
    assert fitted_encoder_dir(config, _content(12)) != fitted_encoder_dir(config, _content(13))
    assert fitted_encoder_dir(config, _content()) != fitted_encoder_dir({**config, "encoder_fit_epochs": 9}, _content())


def test_the_space_is_keyed_by_its_own_fit_seed_not_the_runs(tmp_path):
    config = _config(tmp_path)
    assert fitted_encoder_dir(config, _content()) == fitted_encoder_dir({**config, "seed": 99}, _content())
    assert fitted_encoder_dir(config, _content()) != fitted_encoder_dir({**config, "encoder_fit_seed": 99}, _content())


def test_semantic_space_contrasts_images_with_shared_fields(tmp_path):
    config = _config(tmp_path, encoder_fit_text_fields=["genre", "year"])
    content = _content()
    texts = encoder_module.fit_texts(config, content)
    assert texts[1] == "genre: genre 1 | year: 1990s" and texts[4] == "genre: genre 1 | year: 1990s"
    assert len(set(texts[1:])) < len(texts) - 1  # several items share a text: identity cannot be learned
    assert fitted_encoder_dir(config, content) != fitted_encoder_dir(_config(tmp_path), content)
    load_item_encoder(config, content)
    with open(os.path.join(fitted_encoder_dir(config, content), "fit_log.json")) as f:
        retrieval = json.load(f)["image_to_text_retrieval"]
    assert retrieval["texts"] == len(set(texts[1:]))  # retrieval among the distinct texts
    with pytest.raises(ValueError, match=r"'encoder_fit_text_fields'.*\['rating'\]"):
        encoder_module.fit_texts(_config(tmp_path, encoder_fit_text_fields=["rating"]), content)


def test_a_cold_cache_draws_from_the_random_stream_like_a_warm_one(tmp_path, monkeypatch):
    config, content = _config(tmp_path), _content()
    fits = []
    real_fit = encoder_module.fit_encoder
    monkeypatch.setattr(encoder_module, "fit_encoder", lambda *args: fits.append(1) or real_fit(*args))
    torch.manual_seed(0)
    load_item_encoder(config, content)  # fits
    cold = torch.get_rng_state()
    torch.manual_seed(0)
    load_item_encoder(config, content)  # cached
    assert fits == [1]
    assert torch.equal(cold, torch.get_rng_state())


def test_local_weights_file_for_a_named_model(tmp_path):
    model = open_clip.create_model("recbole-gen-tiny", pretrained=None)
    weights = tmp_path / "weights.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(weights))
    config = _config(tmp_path, eval_encoder="recbole-gen-tiny", eval_encoder_pretrained=str(weights))
    content = _content(4, size=64)
    loaded = load_item_encoder(config, content).encode_images(content.images)
    expected = ItemEncoder(model).encode_images(content.images)
    assert torch.allclose(loaded, expected, atol=1e-5)


def test_offline_missing_weights_say_how_to_point_at_a_local_file(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # read at import: set where it is used
    config = _config(tmp_path, eval_encoder="ViT-B-32", eval_encoder_pretrained="laion2b_s34b_b79k")
    with pytest.raises(RuntimeError, match=r"eval_encoder_pretrained.*weights file"):
        load_item_encoder(config, _content())


def test_named_model_without_weights_is_refused(tmp_path):
    with pytest.raises(ValueError, match="needs eval_encoder_pretrained"):
        load_item_encoder(_config(tmp_path, eval_encoder="ViT-B-32"), _content())


def test_unknown_encoder_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"'eval_encoder' = 'ViT-Q-99'"):
        load_item_encoder(_config(tmp_path, eval_encoder="ViT-Q-99"), _content())

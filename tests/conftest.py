"""Shared fixtures: a tiny sequential dataset written as RecBole atomic files, and a fast config."""

import random

import pytest
import torch

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance"]


def write_tiny_dataset(root, name="tiny", n_users=24, n_items=30, per_user=9, seed=0):
    """Users drift through genre-coherent item blocks so sequential models have a signal to learn."""
    rng = random.Random(seed)
    folder = root / name
    folder.mkdir(parents=True)
    with open(folder / f"{name}.item", "w") as f:
        f.write("item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq\n")
        for item in range(1, n_items + 1):
            genre = GENRES[item % len(GENRES)]
            f.write(f"i{item}\tTitle {item}\t{1950 + 2 * item}\t{genre}\n")
    with open(folder / f"{name}.inter", "w") as f:
        f.write("user_id:token\titem_id:token\trating:float\ttimestamp:float\n")
        for user in range(1, n_users + 1):
            start = rng.randrange(n_items)
            for step in range(per_user):
                item = (start + step * len(GENRES)) % n_items + 1
                f.write(f"u{user}\ti{item}\t{3 + (user + step) % 3}\t{user * 1000 + step}\n")
    return folder


def tiny_janus(path):
    """Save a tiny random JanusForConditionalGeneration (its own 16-code VQ model) to ``path``."""
    from transformers import JanusConfig, JanusForConditionalGeneration

    torch.manual_seed(0)
    config = JanusConfig(
        text_config={"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 2, "vocab_size": 64},
        vision_config={"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32,
                       "patch_size": 8, "projection_dim": 32, "num_image_tokens": 16, "mlp_ratio": 2.0},
        vq_config={"embed_dim": 4, "num_embeddings": 32, "latent_channels": 32, "base_channels": 32,
                   "channel_multiplier": [1, 2], "num_res_blocks": 1, "num_patches": 4, "projection_dim": 32,
                   "image_token_embed_dim": 32, "num_hidden_layers": 1},
        image_token_id=63,
    )
    JanusForConditionalGeneration(config).save_pretrained(path)


def run_stopped_after_first_epoch(monkeypatch, **run_kwargs):
    """``run_recbole_gen(**run_kwargs)`` stopped right after its first resume state is written, as a lost machine
    would stop it; returns the run's checkpoint path, which ``resume`` takes."""
    from recbole_gen.quick_start import run_recbole_gen
    from recbole_gen.trainer.trainer import GenerativeEvaluationMixin

    stopped = []
    real_save = GenerativeEvaluationMixin._save_resume_state

    def stop_after_first_epoch(self, epoch, train_data):
        real_save(self, epoch, train_data)
        stopped.append(self.saved_model_file)
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(GenerativeEvaluationMixin, "_save_resume_state", stop_after_first_epoch)
        with pytest.raises(KeyboardInterrupt):
            run_recbole_gen(**run_kwargs)
    return stopped[0]


@pytest.fixture
def tiny_dataset(tmp_path):
    write_tiny_dataset(tmp_path)
    return tmp_path


def fast_config_dict(root):
    """A config dict that trains and evaluates the tiny dataset under ``root`` in seconds; files go under ``root``."""
    return {
        "data_path": str(root),
        "load_col": {"inter": ["user_id", "item_id", "rating", "timestamp"]},
        "checkpoint_dir": str(root / "saved"),
        "content_cache_dir": str(root / "content_cache"),
        "encoder_cache_dir": str(root / "encoder_cache"),
        "epochs": 2,
        "train_batch_size": 32,
        "eval_batch_size": 64,
        "MAX_ITEM_LIST_LENGTH": 8,
        "hidden_size": 16,
        "inner_size": 32,
        "n_layers": 1,
        "embedding_size": 16,
        "image_size": 32,
        "encoder_fit_epochs": 2,
        "encoder_fit_batch_size": 16,
        "personal_lift_samples": 5,
        "show_progress": False,
        "state": "ERROR",
        "use_gpu": False,
    }


def genrec_config_dict(root):
    """fast_config_dict with a tiny GenRec: 16 px images, a 16-code VQ tokenizer, a one-layer generator."""
    return {
        **fast_config_dict(root),
        "tokenizer_image_size": 16,
        "tokenizer_block_out_channels": [8, 16],
        "tokenizer_latent_channels": 4,
        "tokenizer_codebook_size": 16,
        "tokenizer_fit_epochs": 2,
        "gen_hidden_size": 32,
        "gen_intermediate_size": 64,
        "gen_layers": 1,
        "gen_heads": 2,
        "n_cond_tokens": 2,
        "n_history_images": 2,
        "eval_samples": 2,
        "gallery_users": 3,
        "gallery_samples": 2,
        "learning_rate": 0.01,
        "tokenizer_cache_dir": str(root / "tokenizer_cache"),
        "gallery_dir": str(root / "gallery"),
    }


@pytest.fixture(autouse=True)
def close_tensorboard_writers(monkeypatch):
    """Close every tensorboard writer a test opened (RecBole's trainers open one under a path relative to the
    test's folder) before that folder stops being the working directory, so no writer thread flushes into a
    missing folder after the test."""
    from torch.utils.tensorboard import SummaryWriter

    opened, init = [], SummaryWriter.__init__

    def recording_init(self, *args, **kwargs):
        init(self, *args, **kwargs)
        opened.append(self)

    monkeypatch.setattr(SummaryWriter, "__init__", recording_init)
    yield
    for writer in opened:
        writer.close()


@pytest.fixture
def fast_config(tiny_dataset, monkeypatch):
    monkeypatch.chdir(tiny_dataset)
    return fast_config_dict(tiny_dataset)


@pytest.fixture
def genrec_config(fast_config, tiny_dataset):
    return genrec_config_dict(tiny_dataset)

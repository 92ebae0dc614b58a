"""Checkpoints: nothing in one is ever executed, it holds the final typed config, and a GenRec one is
self-contained (no tokenizer cache, no image folder needed to load, evaluate or generate)."""

import json
import os
import shutil
import sys

import pytest
import torch
from PIL import Image

from recbole_gen.compat import load_checkpoint
from recbole_gen.generate import main as generate_main
from recbole_gen.model import image_tokenizer
from recbole_gen.quick_start import load_data_and_model, run_recbole_gen
from conftest import genrec_config_dict, write_tiny_dataset

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import eval_seeds  # noqa: E402  (the benchmark scripts' loading path)

PAYLOAD = "__import__('pathlib').Path('PWNED-{}').touch()"


def _rewrite_config(path, out, edit):
    checkpoint = torch.load(path, weights_only=True)
    saved = json.loads(checkpoint["config"])
    edit(saved)
    checkpoint["config"] = json.dumps(saved)
    torch.save(checkpoint, out)
    return str(out)


@pytest.fixture(scope="module")
def trained_genrec(tmp_path_factory):
    """One GenRec checkpoint for the module (training is the slow part): its path."""
    root = tmp_path_factory.mktemp("trained")
    write_tiny_dataset(root)
    config = {**genrec_config_dict(root), "epochs": 1, "gallery_users": 0, "metrics": ["Recall", "TargetSim"],
              "valid_metric": "Recall@10"}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        return run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file


@pytest.fixture
def genrec_checkpoint(trained_genrec, tiny_dataset, monkeypatch):
    """The module's checkpoint, run from a fresh folder (where a planted expression would write)."""
    monkeypatch.chdir(tiny_dataset)
    return trained_genrec


def _plant(saved):
    """Expressions with side effects in several keys, nested too, in both the user's settings and the final config."""
    for part in ("external", "final"):
        saved[part]["note"] = PAYLOAD.format(f"{part}-note")  # a key nobody knows: must stay a string
        saved[part]["gallery_dir"] = PAYLOAD.format(f"{part}-path")  # a string key
        saved[part]["eval_args"] = {"split": {"LS": PAYLOAD.format(f"{part}-nested-dict")}, "order": "TO", "mode": "full"}
        saved[part]["tokenizer_block_out_channels"] = [8, PAYLOAD.format(f"{part}-nested-list")]


LOADERS = {
    "load_data_and_model": lambda path, out: load_data_and_model(path),
    "recbole_gen.generate": lambda path, out: generate_main(["--checkpoint", path, "--users", "u3", "--out", str(out)]),
    "benchmarks/eval_seeds": lambda path, out: eval_seeds.load_genrec(path),
}


@pytest.mark.parametrize("loader", LOADERS)
def test_expressions_in_a_checkpoint_never_run(genrec_checkpoint, tiny_dataset, loader):
    crafted = _rewrite_config(genrec_checkpoint, tiny_dataset / "crafted.pth", _plant)
    with pytest.raises(ValueError, match=r"config key 'tokenizer_block_out_channels\[1\]' holds the string .*where a int"):
        LOADERS[loader](crafted, tiny_dataset / "out")
    assert not list(tiny_dataset.glob("PWNED-*"))


@pytest.mark.parametrize("key, value, error", [
    ("epochs", PAYLOAD.format("epochs"), r"'epochs' holds the string"),
    ("learning_rate", PAYLOAD.format("lr"), r"'learning_rate' holds the string"),
])
def test_a_string_where_a_number_belongs_is_refused(genrec_checkpoint, tiny_dataset, key, value, error):
    def edit(saved):
        saved["external"][key] = value

    crafted = _rewrite_config(genrec_checkpoint, tiny_dataset / "crafted.pth", edit)
    with pytest.raises(ValueError, match=error):
        load_data_and_model(crafted)
    assert not list(tiny_dataset.glob("PWNED-*"))


def test_strings_stay_strings_and_the_command_line_is_not_read(genrec_checkpoint, tiny_dataset, monkeypatch):
    def edit(saved):
        saved["external"]["note"] = PAYLOAD.format("note")
        saved["final"]["note"] = PAYLOAD.format("note")
        saved["external"]["tags"] = "[1, 2]"

    crafted = _rewrite_config(genrec_checkpoint, tiny_dataset / "crafted.pth", edit)
    monkeypatch.setattr(sys, "argv", ["x", "--epochs=999", "--note=[3]"])
    config, model, *_ = load_data_and_model(crafted)
    assert config["note"] == PAYLOAD.format("note") and config["tags"] == "[1, 2]"
    assert config["epochs"] == 1
    assert not list(tiny_dataset.glob("PWNED-*"))


def test_a_teacher_that_recbole_would_evaluate_is_refused(fast_config, tiny_dataset):
    from recbole_gen.config import Config

    with pytest.raises(ValueError, match="config key 'teacher' must be a model class name"):
        Config(model="KD_DAGFM", dataset="tiny", config_dict={**fast_config, "teacher": PAYLOAD.format("teacher")})
    assert not list(tiny_dataset.glob("PWNED-*"))


def test_the_final_config_is_restored_over_changed_defaults(genrec_checkpoint, tiny_dataset, caplog):
    def edit(saved):  # as if GenRec.yaml's default had changed since training: the checkpoint's value wins
        saved["final"]["gen_top_k"] = 7
        saved["external"].pop("gen_top_k", None)

    crafted = _rewrite_config(genrec_checkpoint, tiny_dataset / "crafted.pth", edit)
    config, model, *_ = load_data_and_model(crafted)
    assert config["gen_top_k"] == 7 and model.generation_config.top_k == 7
    assert "gen_top_k" in caplog.text
    config, *_ = load_data_and_model(crafted, overrides={"gen_top_k": 3})  # explicit overrides win
    assert config["gen_top_k"] == 3


def _item_images(folder, n_items=30):
    folder.mkdir()
    for item in range(1, n_items + 1):
        Image.new("RGB", (20, 20), (item * 8 % 256, item * 40 % 256, 90)).save(folder / f"i{item}.png")
    return folder


def test_a_genrec_checkpoint_needs_no_cache_and_no_images(genrec_config, tiny_dataset, monkeypatch):
    images = _item_images(tiny_dataset / "posters")
    # the instructor creates for every request, so the generate command below samples candidates
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "metrics": ["Recall"], "valid_metric": "Recall@10",
              "image_dir": str(images), "instructor_show_threshold": 2.0, "instructor_edit_threshold": 2.0}
    result = run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)
    path = result["trainer"].saved_model_file
    trained = result["trainer"].model.eval()
    for folder in (images, tiny_dataset / "tokenizer_cache", tiny_dataset / "content_cache"):
        shutil.rmtree(folder)

    def no_fit(*args):
        raise AssertionError("the tokenizer was fitted again")

    monkeypatch.setattr(image_tokenizer, "fit_tokenizer", no_fit)
    _, loaded, _, _, _, test_data = load_data_and_model(path)
    interaction = next(iter(test_data))[0]
    assert torch.equal(loaded.item_codes, trained.item_codes)
    assert torch.equal(loaded.eval().generate(interaction, 2, seed=5).images, trained.generate(interaction, 2, seed=5).images)

    out = tiny_dataset / "generated"
    generate_main(["--checkpoint", path, "--users", "u3,u7", "--samples", "2", "--out", str(out)])
    assert (out / "gallery.png").is_file() and (out / "user_u7" / "sample_2.png").is_file()
    assert "are not on this machine" in json.loads((out / "manifest.json").read_text())["checks_skipped"]
    assert not (tiny_dataset / "tokenizer_cache").exists()
    assert load_checkpoint(path)["config"]["final"]["image_dir"] == str(images)  # the run's setting, kept as it was

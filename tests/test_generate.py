"""python -m recbole_gen.generate: images, gallery and manifest for chosen users of a trained GenRec."""

import json

import pytest
from PIL import Image

from recbole_gen.generate import main
from recbole_gen.quick_start import run_recbole_gen


@pytest.fixture
def genrec_checkpoint(genrec_config):
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "metrics": ["Recall"], "valid_metric": "Recall@10"}
    return run_recbole_gen(model="GenRec", dataset="tiny", config_dict=config)["trainer"].saved_model_file


def test_generates_samples_gallery_and_manifest(genrec_checkpoint, tmp_path, capsys):
    out = tmp_path / "out"
    main(["--checkpoint", genrec_checkpoint, "--users", "u3,u7", "--samples", "2", "--out", str(out)])
    manifest = json.loads((out / "manifest.json").read_text())
    assert [user["user"] for user in manifest["users"]] == ["u3", "u7"]
    for user in manifest["users"]:
        assert len(user["samples"]) == 2 and user["ground_truth"].startswith("i") and user["history"]
        assert Image.open(user["samples"][0]).size == (16, 16)
    assert Image.open(out / "gallery.png").size[1] > 2 * 96
    assert "Wrote 2 images for each of 2 users" in capsys.readouterr().out


def test_unknown_user_is_named(genrec_checkpoint, tmp_path):
    with pytest.raises(SystemExit, match="unknown user token"):
        main(["--checkpoint", genrec_checkpoint, "--users", "u3,nobody", "--out", str(tmp_path)])


def test_a_checkpoint_of_another_model_is_refused(fast_config, tmp_path):
    config = {**fast_config, "epochs": 1, "metrics": ["Recall"], "valid_metric": "Recall@10"}
    path = run_recbole_gen(model="GRU4Rec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    with pytest.raises(SystemExit, match="holds a GRU4Rec"):
        main(["--checkpoint", path, "--users", "u3", "--out", str(tmp_path)])

"""python -m recbole_gen.generate: images, gallery and manifest for chosen users of a trained GenRec."""

import json

import pytest
from PIL import Image

from recbole_gen.generate import main
from recbole_gen.quick_start import run_recbole_gen


@pytest.fixture
def genrec_checkpoint(genrec_config):
    # the instructor creates for every request (the checkpoint's thresholds), so that every user gets candidates
    config = {**genrec_config, "epochs": 1, "gallery_users": 0, "metrics": ["Recall"], "valid_metric": "Recall@10", "rl_reward_fit_epochs": 2,
              "instructor_show_threshold": 2.0, "instructor_edit_threshold": 2.0}
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
    assert "Wrote up to 2 candidates for each of 2 users" in capsys.readouterr().out


def test_unknown_user_is_named(genrec_checkpoint, tmp_path):
    with pytest.raises(SystemExit, match="unknown user token"):
        main(["--checkpoint", genrec_checkpoint, "--users", "u3,nobody", "--out", str(tmp_path)])


def test_a_checkpoint_of_another_model_is_refused(fast_config, tmp_path):
    config = {**fast_config, "epochs": 1, "metrics": ["Recall"], "valid_metric": "Recall@10"}
    path = run_recbole_gen(model="GRU4Rec", dataset="tiny", config_dict=config)["trainer"].saved_model_file
    with pytest.raises(SystemExit, match="holds a GRU4Rec"):
        main(["--checkpoint", path, "--users", "u3", "--out", str(tmp_path)])


def test_edit_at_strength_zero_is_a_planted_copy_the_checks_catch_and_provenance_is_written(genrec_checkpoint, tmp_path):
    from recbole_gen.fidelity.provenance import read_provenance

    out = tmp_path / "out"
    main(["--checkpoint", genrec_checkpoint, "--users", "u3,u7", "--samples", "2", "--out", str(out), "--edit", "i5",
          "--strength", "0", "--seed", "9"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request"]["edit"] == "i5" and manifest["fidelity_checks"] == ["near_copy", "realism"]
    for user in manifest["users"]:
        assert user["action"] == "show" and user["source_item"] == "i5" and user["fallback_to_catalog"]
        assert all(not verdicts["near_copy"]["passed"] and "near copy of catalog item" in verdicts["near_copy"]["reason"]
                   for verdicts in user["verdicts"])
        record = read_provenance(user["samples"][0])
        assert record["edit"] == "i5" and record["strength"] == 0 and record["seed"] == 9 and record["user"] == user["user"]
        assert record["checkpoint"].endswith(".pth") and record["model"] == "GenRec" and record["sample"] == 1
        assert read_provenance(user["shown"])["catalog_item"]


def test_feedback_and_instruction_flags(genrec_checkpoint, tmp_path):
    out = tmp_path / "out"
    main(["--checkpoint", genrec_checkpoint, "--users", "u3", "--samples", "2", "--out", str(out), "--like", "i2,i4",
          "--dislike", "i9", "--no_checks"])
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["request"]["like"] == ["i2", "i4"] and manifest["request"]["dislike"] == ["i9"]
    assert manifest["fidelity_checks"] == [] and manifest["users"][0]["verdicts"] == [{}, {}]
    with pytest.raises(SystemExit, match="--dislike: unknown item token"):
        main(["--checkpoint", genrec_checkpoint, "--users", "u3", "--out", str(out), "--dislike", "nothing", "--no_checks"])
    with pytest.raises(ValueError, match="n_instruction_tokens"):
        main(["--checkpoint", genrec_checkpoint, "--users", "u3", "--out", str(out), "--instruction", "a comedy", "--no_checks"])


def test_crops_of_the_edited_item_are_its_candidates(genrec_checkpoint, tmp_path):
    out = tmp_path / "out"
    main(["--checkpoint", genrec_checkpoint, "--users", "u3", "--samples", "3", "--out", str(out), "--edit", "i5", "--crops",
          "--crop_scale", "0.5"])
    manifest = json.loads((out / "manifest.json").read_text())
    user = manifest["users"][0]
    assert manifest["request"]["crops"] == 0.5 and user["action"] == "edit" and len(user["samples"]) == 3
    assert all(set(verdicts) == {"near_copy", "realism"} for verdicts in user["verdicts"])  # recorded (near_copy waived)
    shown = Image.open(user["shown"]).tobytes()
    assert shown in [Image.open(path).tobytes() for path in user["samples"]]
    with pytest.raises(SystemExit):
        main(["--checkpoint", genrec_checkpoint, "--users", "u3", "--out", str(out), "--crops"])

"""benchmarks/tokenizer_fit.py: one tokenizer fit, with or without autograd's anomaly detection."""

import json
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks"))
import tokenizer_fit  # noqa: E402


@pytest.mark.parametrize("flag", [False, True])
def test_the_fit_runs_with_anomaly_detection_only_when_asked_and_leaves_it_as_it_was(genrec_config, monkeypatch, capsys, flag):
    seen, fit = [], tokenizer_fit.fit_tokenizer

    def fit_and_record(*args):
        seen.append(torch.is_anomaly_enabled())
        return fit(*args)

    monkeypatch.setattr(tokenizer_fit, "fit_tokenizer", fit_and_record)
    keys = ("data_path", "load_col", "tokenizer_image_size", "tokenizer_block_out_channels", "tokenizer_latent_channels",
            "tokenizer_codebook_size")
    sets = [f"{key}={json.dumps(genrec_config[key])}" for key in keys] + ["tokenizer_fit_epochs=1"]
    monkeypatch.setattr(sys, "argv", ["tokenizer_fit.py", "--dataset", "tiny", "--set", *sets] + ["--anomaly_detection"] * flag)
    tokenizer_fit.main()
    printed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert seen == [flag] and printed["anomaly_detection"] is flag
    assert printed["settings"]["tokenizer_fit_epochs"] == 1 and printed["mse"] > 0 and 0 < printed["codebook_usage"] <= 1
    assert not torch.is_anomaly_enabled()

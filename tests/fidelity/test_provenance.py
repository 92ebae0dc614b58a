"""Provenance PNGs: the metadata and the pixels round-trip, and what is missing is named."""

import os

import numpy as np
import pytest
import torch
from PIL import Image

import recbole_gen
from recbole_gen.fidelity.provenance import read_provenance, save_image

METADATA = {"model": "GenRec", "checkpoint": "saved/GenRec-Jan-01-2026.pth", "seed": 2026, "user": 12, "sample": 3,
            "guidance_scale": 2.5}


def image():
    return torch.randint(0, 256, (3, 16, 16), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_provenance_and_pixels_round_trip(tmp_path):
    path = tmp_path / "user12_sample3.png"
    save_image(image(), path, METADATA)
    assert read_provenance(path) == {**METADATA, "recbole_gen_version": recbole_gen.__version__}
    assert np.array_equal(np.array(Image.open(path)), image().permute(1, 2, 0).numpy())
    assert os.listdir(tmp_path) == ["user12_sample3.png"]  # the temporary file was renamed into place


@pytest.mark.parametrize("key", ["model", "checkpoint", "seed"])
def test_missing_required_key_is_named(tmp_path, key):
    metadata = {name: value for name, value in METADATA.items() if name != key}
    with pytest.raises(ValueError, match=f"lacks the key '{key}'"):
        save_image(image(), tmp_path / "x.png", metadata)
    assert os.listdir(tmp_path) == []


def test_value_that_is_not_json_is_named(tmp_path):
    with pytest.raises(ValueError, match="key 'seed' must hold a JSON value .* got Tensor"):
        save_image(image(), tmp_path / "x.png", {**METADATA, "seed": torch.tensor(3)})


def test_png_without_provenance_is_named(tmp_path):
    path = tmp_path / "plain.png"
    Image.fromarray(image().permute(1, 2, 0).numpy()).save(path)
    with pytest.raises(ValueError, match="plain.png holds no provenance"):
        read_provenance(path)

"""Item content: images from a folder or an .item column, rendered cards, missing files, the cache."""

import logging
import os
from types import SimpleNamespace

import numpy as np
import pytest
import recbole
from PIL import Image

from recbole_gen.data import item_content as item_content_module
from recbole_gen.data.item_content import ItemContent

POSTERS = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "ml-100k-posters", "images")


def _dataset(tokens):
    return SimpleNamespace(field2id_token={"item_id": np.array(["[PAD]"] + tokens)})


def _write_items(folder, rows, extra_column=None):
    header = "item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"
    lines = [header + (f"\t{extra_column}:token" if extra_column else "")]
    lines += ["\t".join(row) for row in rows]
    (folder / "shop.item").write_text("\n".join(lines) + "\n")


def _config(folder, **overrides):
    config = {"data_path": str(folder), "dataset": "shop", "ITEM_ID_FIELD": "item_id", "image_size": 16,
              "content_cache_dir": str(folder / "cache")}
    config.update(overrides)
    return config


@pytest.fixture
def shop(tmp_path):
    rows = [["a", "Alpha", "1990", "Action"], ["b", "Beta", "2001", "Comedy Drama"],
            ["c", "Gamma", "1975", "Horror"], ["d", "Delta", "1960", "Drama"]]
    _write_items(tmp_path, rows)
    images = tmp_path / "images"
    images.mkdir()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(images / "a.png")
    Image.new("RGB", (20, 40), (0, 255, 0)).save(images / "b.jpg")
    Image.new("RGB", (30, 30), (0, 0, 255)).save(images / "c.webp")
    (images / "d.jpg").write_bytes(os.urandom(64))  # corrupt
    return tmp_path


def test_images_from_folder_with_missing_and_corrupt(shop, caplog):
    dataset = _dataset(["a", "b", "c", "d", "e"])  # e has no file at all
    with caplog.at_level(logging.WARNING):
        content = ItemContent(_config(shop, image_dir=str(shop / "images")), dataset)
    assert content.images.shape == (6, 3, 16, 16) and content.images.dtype.is_floating_point is False
    assert content.has_image.tolist() == [False, True, True, True, False, False]
    assert content.n_missing == 2 and content.missing_tokens == ["d", "e"]
    assert content.images[1, 0].float().mean() > 200 and content.images[2, 1].float().mean() > 200
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "2 of 5 items" in warnings[0] and "d, e" in warnings[0] and "d.jpg" in warnings[0]
    assert content.texts[2] == "Beta | 2001 | Comedy Drama"


def test_second_run_reads_the_cache(shop, monkeypatch):
    config, dataset = _config(shop, image_dir=str(shop / "images")), _dataset(["a", "b", "c"])
    first = ItemContent(config, dataset)
    assert not first.from_cache

    def no_decoding(*args):
        raise AssertionError("an image was decoded again")

    monkeypatch.setattr(item_content_module, "_load_image", no_decoding)
    second = ItemContent(config, dataset)
    assert second.from_cache
    assert (second.images == first.images).all() and second.fingerprint == first.fingerprint


def test_cache_follows_file_changes(shop):
    config, dataset = _config(shop, image_dir=str(shop / "images")), _dataset(["a"])
    first = ItemContent(config, dataset)
    Image.new("RGB", (40, 20), (0, 0, 0)).save(shop / "images" / "a.png")
    os.utime(shop / "images" / "a.png", ns=(1, 1))
    second = ItemContent(config, dataset)
    assert not second.from_cache and second.fingerprint != first.fingerprint


def test_an_image_past_pillows_bomb_limit_counts_as_corrupt(shop, monkeypatch, caplog):
    Image.new("RGB", (64, 64), (9, 9, 9)).save(shop / "images" / "c.webp")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 3000)  # 4096 pixels: past the warning limit, under the error one
    with caplog.at_level(logging.WARNING):
        content = ItemContent(_config(shop, image_dir=str(shop / "images")), _dataset(["a", "c"]))
    assert content.has_image.tolist() == [False, True, False]
    assert "c.webp" in caplog.text
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)  # 4096 > 2 x 100: Pillow raises
    assert ItemContent(_config(shop, image_dir=str(shop / "images"), image_size=8), _dataset(["c"])).has_image.tolist() == [False, False]


def test_the_cache_is_written_atomically(shop, monkeypatch):
    config, dataset = _config(shop, image_dir=str(shop / "images")), _dataset(["a", "b"])

    def interrupted(file, **arrays):
        file.write(b"half a cache")
        raise KeyboardInterrupt

    monkeypatch.setattr(np, "savez", interrupted)
    with pytest.raises(KeyboardInterrupt):
        ItemContent(config, dataset)
    assert os.listdir(shop / "cache") == []  # no partial file a later run would trust
    monkeypatch.undo()
    assert not ItemContent(config, dataset).from_cache and ItemContent(config, dataset).from_cache


def test_item_content_is_built_once_per_dataset_and_settings(shop):
    config, dataset = _config(shop), _dataset(["a", "b"])
    first = item_content_module.item_content(config, dataset)
    assert item_content_module.item_content(dict(config), _dataset(["a", "b"])) is first
    assert item_content_module.item_content({**config, "image_size": 8}, dataset) is not first


def test_image_field_paths_are_relative_to_the_dataset(shop):
    rows = [["a", "Alpha", "1990", "Action", "images/a.png"], ["b", "Beta", "2001", "Comedy", ""]]
    _write_items(shop, rows, extra_column="poster")
    content = ItemContent(_config(shop, image_field="poster"), _dataset(["a", "b"]))
    assert content.source == "image_field"
    assert content.has_image.tolist() == [False, True, False]


def test_rendered_cards_say_so_and_are_deterministic(shop, caplog):
    with caplog.at_level(logging.WARNING):
        first = ItemContent(_config(shop), _dataset(["a", "b", "c", "d"]))
    assert first.source == "cards" and "NOT real item images" in caplog.text
    second = ItemContent(_config(shop), _dataset(["a", "b", "c", "d"]))
    assert (first.images == second.images).all()
    assert not (first.images[1] == first.images[3]).all()  # different genres, different cards


@pytest.mark.parametrize(
    "overrides, error, pattern",
    [
        ({"image_dir": "/no/such/folder"}, FileNotFoundError, r"'image_dir'.*/no/such/folder"),
        ({"text_fields": ["movie_title", "plot"]}, ValueError, r"'text_fields'.*plot.*available"),
        ({"image_field": "poster"}, ValueError, r"'image_field' = 'poster'.*available"),
        ({"image_dir": ".", "image_field": "poster"}, ValueError, r"one of the config keys 'image_dir'.*'image_field'.*not both"),
    ],
)
def test_bad_settings_name_the_key(shop, overrides, error, pattern):
    with pytest.raises(error, match=pattern):
        ItemContent(_config(shop, **overrides), _dataset(["a"]))


@pytest.mark.skipif(not os.path.isdir(POSTERS), reason="real ml-100k posters not available")
def test_real_ml100k_posters(tmp_path):
    config = {"data_path": os.path.join(os.path.dirname(recbole.__file__), "dataset_example", "ml-100k"),
              "dataset": "ml-100k", "ITEM_ID_FIELD": "item_id", "image_size": 32, "image_dir": POSTERS,
              "text_fields": ["movie_title", "release_year", "class"], "content_cache_dir": str(tmp_path)}
    content = ItemContent(config, _dataset(["1", "2", "3"]))
    assert content.has_image.tolist() == [False, True, True, True]
    assert content.texts[1] == "Toy Story | 1995 | Animation Children's Comedy"
    assert content.images[1:].float().std() > 10  # real pictures, not placeholders

"""Item content: the image and text of every item of a RecBole dataset, aligned with internal ids.

Images come from ``image_dir`` (files named by the item's token) or from an ``.item`` column of paths
(``image_field``); without either, each item gets a rendered metadata card (see cards.py). Decoded
images are cached as one ``.npz`` file (written atomically), keyed by the image files and
``image_size`` (in a distributed run rank 0 writes it, the other processes read it). :func:`item_content`
builds a dataset's content once per process and hands the same object to every part of a run (the
model, the item encoder, galleries).
"""

import csv
import hashlib
import json
import logging
import os
import warnings

import numpy as np
import pandas as pd
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from recbole_gen.data.cards import render_card
from recbole_gen.fitting import atomic_file, rank_zero_first

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp")
PLACEHOLDER_GREY = 128
CACHE_FORMAT = 2
# Pillow refuses images past its decompression-bomb limit; such a file counts as corrupt, like any
# other that fails to decode.
DECODE_ERRORS = (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError, Image.DecompressionBombWarning)
_CONTENT_SETTINGS = ("data_path", "dataset", "image_dir", "image_field", "image_size", "text_fields", "seq_separator",
                     "field_separator", "content_cache_dir", "ITEM_ID_FIELD")
_built = {}
TITLE_FIELDS, YEAR_FIELDS, GENRE_FIELDS = ("movie_title", "title"), ("release_year", "year"), ("class", "genre", "genres")


def _setting(config, key, default=None):
    return config[key] if key in config else default


def check_image_source(config):
    """Fail early, naming the key, on an image source that cannot work."""
    image_dir, image_field = _setting(config, "image_dir"), _setting(config, "image_field")
    if image_dir is not None and image_field is not None:
        raise ValueError(f"set one of the config keys 'image_dir' ({image_dir}) and 'image_field' ({image_field}), not both")
    if image_dir is not None and not os.path.isdir(image_dir):
        raise FileNotFoundError(f"config key 'image_dir' names a folder that does not exist: {image_dir}")


def read_item_file(config):
    """The dataset's ``.item`` atomic file as strings, indexed by item token; None if there is none."""
    path = os.path.join(config["data_path"], f"{config['dataset']}.item")
    if not os.path.isfile(path):
        return None
    table = pd.read_csv(
        path, sep=_setting(config, "field_separator", "\t"), dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE
    )
    table.columns = [column.split(":")[0] for column in table.columns]
    return table.set_index(config["ITEM_ID_FIELD"])


def item_content(config, dataset):
    """The :class:`ItemContent` of ``dataset`` under ``config``'s content settings, built once per process
    (the splits of a dataset share their items, so they share one content)."""
    tokens = tuple(str(token) for token in dataset.field2id_token[config["ITEM_ID_FIELD"]])
    key = json.dumps([[_setting(config, name) for name in _CONTENT_SETTINGS], tokens], default=str)
    if key not in _built:
        _built.clear()  # one dataset's content at a time: a catalog's images can be large
        _built[key] = ItemContent(config, dataset)
    return _built[key]


def _texts(config, table, tokens):
    columns = [] if table is None else list(table.columns)
    fields = _setting(config, "text_fields") or columns
    unknown = [field for field in fields if field not in columns]
    if unknown:
        raise ValueError(f"config key 'text_fields' names columns not in the .item file: {unknown}; available: {columns}")
    texts = [""]
    for token in tokens[1:]:
        if table is not None and token in table.index and fields:
            row = table.loc[token]
            texts.append(" | ".join(str(row[field]) for field in fields if str(row[field])))
        else:
            texts.append(token)
    return texts


def item_texts(config, dataset):
    """Every item's text (``text_fields`` of the ``.item`` file, else its token), row = internal item id;
    reads no image."""
    return _texts(config, read_item_file(config), [str(token) for token in dataset.field2id_token[config["ITEM_ID_FIELD"]]])


def forget_item_content():
    """Start a new run: the next :func:`item_content` call reads the images again (they may have changed)."""
    _built.clear()


def _load_image(path, size):
    """Decode, convert to RGB, resize the shorter side to ``size`` and centre-crop."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as image:
            return _square(image.convert("RGB"), size)


def _square(image, size):
    """Resize the shorter side to ``size`` and centre-crop to a square, as uint8 HWC."""
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    return np.asarray(image.crop((left, top, left + size, top + size)))


class ItemContent:
    """Images (uint8, ``(n_items, 3, S, S)``) and texts of every item; row 0 is RecBole's padding item."""

    def __init__(self, config, dataset):
        self.size = _setting(config, "image_size", 64)
        self.tokens = [str(token) for token in dataset.field2id_token[config["ITEM_ID_FIELD"]]]
        self.table = read_item_file(config)
        self.texts = _texts(config, self.table, self.tokens)
        self.from_cache = False
        self.n_missing, self.missing_tokens = 0, []
        check_image_source(config)
        image_dir, image_field = _setting(config, "image_dir"), _setting(config, "image_field")
        if image_dir is not None:
            self.source = "image_dir"
            paths = self._paths_in_dir(image_dir)
        elif image_field is not None:
            self.source = "image_field"
            paths = self._paths_in_field(config, image_field)
        else:
            self.source = "cards"
            paths = None
        if paths is None:
            logger.warning(
                f"{len(self) - 1} items have no image source (set image_dir or image_field for real images): "
                "using rendered metadata cards (genre stripes, year marker, title), NOT real item images."
            )
            pixels, self.has_image = self._render_cards(config), torch.ones(len(self), dtype=torch.bool)
        else:
            with rank_zero_first():  # a distributed run's rank 0 decodes and caches; the others read its cache
                pixels = self._decode(paths, _setting(config, "content_cache_dir", "saved/content_cache"))
        self.has_image[0] = False
        self.images = torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()
        self.fingerprint = hashlib.sha256(pixels.tobytes() + json.dumps(self.texts).encode()).hexdigest()

    def __len__(self):
        return len(self.tokens)

    def _columns(self):
        return [] if self.table is None else list(self.table.columns)

    def _field(self, token, candidates):
        if self.table is None or token not in self.table.index:
            return ""
        for field in candidates:
            if field in self.table.columns:
                return str(self.table.at[token, field])
        return ""

    def _render_cards(self, config):
        cards = np.full((len(self), self.size, self.size, 3), PLACEHOLDER_GREY, dtype=np.uint8)
        for item, token in enumerate(self.tokens[1:], start=1):
            title = self._field(token, TITLE_FIELDS) or self.texts[item]
            genres = self._field(token, GENRE_FIELDS).split(_setting(config, "seq_separator", " "))
            cards[item] = np.asarray(render_card(title, self._field(token, YEAR_FIELDS), [g for g in genres if g], self.size))
        return cards

    def _paths_in_dir(self, image_dir):
        files = {}
        for name in os.listdir(image_dir):
            stem, extension = os.path.splitext(name)
            if extension.lower() in IMAGE_EXTENSIONS:
                files.setdefault(stem, os.path.join(image_dir, name))
        return [None] + [files.get(token) for token in self.tokens[1:]]

    def _paths_in_field(self, config, image_field):
        if image_field not in self._columns():
            raise ValueError(
                f"config key 'image_field' = '{image_field}' is not a column of the .item file; available: {self._columns()}"
            )
        folder = config["data_path"]
        paths = [None]
        for token in self.tokens[1:]:
            value = str(self.table.at[token, image_field]) if token in self.table.index else ""
            paths.append(os.path.join(folder, value) if value else None)
        return paths

    def _decode(self, paths, cache_dir):
        sources = [
            (token, path, os.stat(path).st_size, os.stat(path).st_mtime_ns) if path and os.path.isfile(path) else (token, None)
            for token, path in zip(self.tokens, paths)
        ]
        key = hashlib.sha256(json.dumps([CACHE_FORMAT, self.size, sources]).encode()).hexdigest()[:20]
        cache_file = os.path.join(cache_dir, f"images-{key}.npz")
        if os.path.isfile(cache_file):
            self.from_cache = True
            with np.load(cache_file, allow_pickle=False) as cached:
                pixels, has_image = cached["pixels"], cached["has_image"]
        else:
            pixels, has_image = self._decode_all(paths)
            with atomic_file(cache_file) as staging, open(staging, "wb") as f:
                np.savez(f, pixels=pixels, has_image=has_image)
        self.has_image = torch.from_numpy(has_image)
        missing = [item for item in range(1, len(self)) if not has_image[item]]
        self.n_missing, self.missing_tokens = len(missing), [self.tokens[item] for item in missing]
        if missing:
            corrupt = [paths[item] for item in missing if paths[item] and os.path.isfile(paths[item])]
            logger.warning(
                f"{len(missing)} of {len(self) - 1} items have no usable image and get a grey placeholder "
                f"(first: {', '.join(self.missing_tokens[:5])})"
                + (f"; corrupt files: {', '.join(corrupt[:5])}" if corrupt else "")
            )
        return pixels

    def _decode_all(self, paths):
        pixels = np.full((len(self), self.size, self.size, 3), PLACEHOLDER_GREY, dtype=np.uint8)
        has_image = np.zeros(len(self), dtype=bool)
        for item, path in enumerate(tqdm(paths, desc="Decode item images", ncols=100, mininterval=2)):
            if item == 0 or path is None or not os.path.isfile(path):
                continue
            try:
                pixels[item] = _load_image(path, self.size)
                has_image[item] = True
            except DECODE_ERRORS:
                pass  # counted and named with the other missing items
        return pixels, has_image

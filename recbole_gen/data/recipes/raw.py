"""What a recipe hands the shared writer (:class:`RawDataset`), and the raw-file readers recipes share.

A recipe reads one source's upstream files and filters nothing: prepare.py filters and counts what each
filter removes. Readers stream files line by line (gzip or not), so a multi-GB review file never sits in
memory beyond the kept columns; a line that cannot be read is an error naming the file and line number.
"""

import gzip
import os
import re
from array import array
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from tqdm import tqdm

from recbole_gen.data.item_content import IMAGE_EXTENSIONS


@dataclass
class RawDataset:
    """One source as read: interactions, item fields and where each item's image is; nothing filtered.

    - ``interactions``: columns ``user_id``, ``item_id`` (strings or categorical), ``rating`` (float; absent
      where the source has none) and ``timestamp`` (seconds, or the source's unit), in file order.
    - ``items``: ``item_id`` and one column per ``item_fields`` entry (name -> RecBole type: token,
      token_seq or float); a token_seq cell is text (split into words) or a list of tokens (each kept whole).
    - ``images``: item token -> image file, or image URL where ``images_are_urls``.
    - ``no_image_source``: why the source has no images at all (what file or option was expected), else None.
    - ``users`` / ``user_fields``: an optional user table, like ``items``.
    - ``notes``: what the recipe counted while reading (duplicate metadata lines, ...), for the summary.
    """

    name: str
    interactions: pd.DataFrame
    items: pd.DataFrame
    item_fields: dict
    images: dict = field(default_factory=dict)
    images_are_urls: bool = False
    no_image_source: str = None
    users: pd.DataFrame = None
    user_fields: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)


class TokenColumn:
    """A column of repeated tokens kept as integer codes while streaming: a review file holds millions of
    rows but far fewer distinct users and items."""

    def __init__(self):
        self._codes, self._index = array("q"), {}

    def append(self, token):
        self._codes.append(self._index.setdefault(token, len(self._index)))

    def categorical(self):
        return pd.Categorical.from_codes(np.frombuffer(self._codes, dtype=np.int64), categories=list(self._index))


class InteractionColumns:
    """Interactions appended one at a time, as a DataFrame in :class:`RawDataset`'s layout."""

    def __init__(self, with_rating=True):
        self.users, self.items = TokenColumn(), TokenColumn()
        self.ratings = array("d") if with_rating else None
        self.timestamps = array("d")

    def append(self, user, item, rating, timestamp):
        self.users.append(user)
        self.items.append(item)
        if self.ratings is not None:
            self.ratings.append(rating)
        self.timestamps.append(timestamp)

    def frame(self):
        columns = {"user_id": self.users.categorical(), "item_id": self.items.categorical()}
        if self.ratings is not None:
            columns["rating"] = np.frombuffer(self.ratings, dtype=np.float64)
        columns["timestamp"] = np.frombuffer(self.timestamps, dtype=np.float64)
        return pd.DataFrame(columns)


def open_text(path, encoding="utf-8"):
    """``path`` opened for reading text, through gzip when its name ends in .gz."""
    if path.endswith(".gz"):
        return gzip.open(path, "rt", encoding=encoding)
    return open(path, encoding=encoding)


def lines(path, encoding="utf-8"):
    """(line number, line without its end) of every non-blank line of ``path``, with a progress bar."""
    with open_text(path, encoding) as f:
        for number, line in enumerate(tqdm(f, desc=f"Read {os.path.basename(path)}", unit=" lines", ncols=100,
                                           mininterval=2), start=1):
            line = line.rstrip("\r\n")
            if line.strip():
                yield number, line


def records(path, parse, what):
    """(line number, dict) of every non-blank line of ``path``, each parsed by ``parse`` (``json.loads``,
    ``ast.literal_eval``); ``what`` names the expected form in the error on a line that is not one."""
    for number, line in lines(path):
        try:
            record = parse(line)
        except (ValueError, SyntaxError, MemoryError, RecursionError) as error:
            raise ValueError(f"{path}, line {number}: not {what} ({type(error).__name__}: {error})") from None
        if not isinstance(record, dict):
            raise ValueError(f"{path}, line {number}: not {what} (a {type(record).__name__})")
        yield number, record


def require(record, keys, path, number):
    """The values of ``keys`` in ``record``; an error naming the file, line and missing keys if any is absent."""
    values = [record.get(key) for key in keys]
    if None in values or "" in values:
        missing = [key for key, value in zip(keys, values) if value is None or value == ""]
        raise ValueError(f"{path}, line {number}: missing {', '.join(missing)} (each line needs {', '.join(keys)})")
    return values


def number_or_error(value, path, number, key):
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}, line {number}: {key} must be a number, not {value!r}") from None


def find_category(folder, recipe, pattern, example, category=None):
    """(category, path) of the review file in ``folder`` whose name fully matches ``pattern`` (a regex
    with a group ``category``): the one named by ``category``, else the only one there."""
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"{recipe}: the raw folder {folder} does not exist")
    found = {}
    for name in sorted(os.listdir(folder)):  # sorted: X.jsonl before X.jsonl.gz
        match = re.fullmatch(pattern, name)
        if match:
            found.setdefault(match["category"], os.path.join(folder, name))
    if category is not None:
        if category not in found:
            raise FileNotFoundError(f"{recipe}: no file {example.replace('<Category>', category)} in {folder} for "
                                    f"--category {category}; categories there: {sorted(found) or 'none'}")
        return category, found[category]
    if not found:
        raise FileNotFoundError(f"{recipe}: no file matching {example} in {folder}")
    if len(found) > 1:
        raise ValueError(f"{recipe}: {len(found)} categories in {folder} ({', '.join(sorted(found))}); pass --category")
    return next(iter(found.items()))


def find_file(folder, names, recipe, what):
    """The first of ``names`` that is a file in ``folder``; an error naming them all if none is."""
    for name in names:
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    raise FileNotFoundError(f"{recipe}: no {what} in {folder}: expected {' or '.join(names)}")


def image_files(folder):
    """Item token (file name without extension) -> path of every image file directly in ``folder``."""
    files = {}
    for name in sorted(os.listdir(folder)):
        stem, extension = os.path.splitext(name)
        if extension.lower() in IMAGE_EXTENSIONS:
            files.setdefault(stem, os.path.join(folder, name))
    return files

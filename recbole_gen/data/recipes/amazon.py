"""Amazon review datasets, three releases, one category at a time (a review file and a metadata file):

- 2023 (Hou et al., McAuley Lab): ``<Category>.jsonl[.gz]`` and ``meta_<Category>.jsonl[.gz]``; items
  are ``parent_asin``; timestamps are milliseconds (written as seconds).
- 2018 (Ni et al.): ``<Category>[_5].json[.gz]`` and ``meta_<Category>.json[.gz]``, JSON lines.
- 2014 (McAuley et al.): ``reviews_<Category>[_5].json[.gz]`` (JSON lines) and ``meta_<Category>.json[.gz]``,
  whose lines are Python dict literals, read with ``ast.literal_eval`` (never evaluated).

A 5-core file's category is ``<Category>_5``; its metadata is the category's. Images are URLs: the
first image of each item, at its largest size.
"""

import ast
import json
import re
from dataclasses import dataclass
from typing import Callable

import pandas as pd

from recbole_gen.data.recipes.raw import (
    InteractionColumns,
    RawDataset,
    find_category,
    find_file,
    number_or_error,
    records,
    require,
)

ITEM_FIELDS_2023 = {"title": "token_seq", "main_category": "token", "categories": "token_seq", "store": "token"}
ITEM_FIELDS_OLDER = {"title": "token_seq", "categories": "token_seq", "brand": "token"}


def _text(value):
    return "" if value is None else str(value)


def _texts(value, path, number, key):
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"{path}, line {number}: {key} must be a list, not {type(value).__name__}")
    return [str(entry) for entry in value]


def _fields_2023(record, path, number):
    images = record.get("images") or []
    first = images[0] if images and isinstance(images[0], dict) else {}
    url = first.get("hi_res") or first.get("large") or first.get("thumb")
    fields = {"title": _text(record.get("title")), "main_category": _text(record.get("main_category")),
              "categories": _texts(record.get("categories"), path, number, "categories"),
              "store": _text(record.get("store"))}
    return fields, url


def _fields_2018(record, path, number):
    urls = (_texts(record.get("imageURLHighRes"), path, number, "imageURLHighRes")
            or _texts(record.get("imageURL"), path, number, "imageURL") or [None])
    fields = {"title": _text(record.get("title")), "categories": _texts(record.get("category"), path, number, "category"),
              "brand": _text(record.get("brand"))}
    return fields, urls[0]


def _fields_2014(record, path, number):
    # categories is a list of category paths, e.g. [['Beauty', 'Makeup'], ['Beauty', 'Skin Care']]
    paths = record.get("categories") or []
    if not all(isinstance(entry, list) for entry in paths):
        raise ValueError(f"{path}, line {number}: categories must be a list of lists")
    categories = list(dict.fromkeys(str(name) for entry in paths for name in entry))
    fields = {"title": _text(record.get("title")), "categories": categories, "brand": _text(record.get("brand"))}
    return fields, record.get("imUrl")


@dataclass(frozen=True)
class Release:
    """How one release names its files and fields."""

    recipe: str
    review_pattern: str  # a regex over file names, with a group 'category'
    review_example: str
    meta_suffixes: tuple
    review_keys: tuple  # user, item, rating, timestamp
    time_scale: float  # timestamp unit -> seconds
    meta_parse: Callable
    meta_form: str
    describe: Callable  # (record, path, line number) -> (item fields, image URL or None)
    item_fields: dict


RELEASES = {
    "amazon2023": Release("amazon2023", r"(?!meta_)(?P<category>.+)\.jsonl(\.gz)?", "<Category>.jsonl[.gz]",
                          (".jsonl", ".jsonl.gz"), ("user_id", "parent_asin", "rating", "timestamp"), 1e-3,
                          json.loads, "a JSON object", _fields_2023, ITEM_FIELDS_2023),
    "amazon2018": Release("amazon2018", r"(?!meta_)(?P<category>.+)\.json(\.gz)?", "<Category>[_5].json[.gz]",
                          (".json", ".json.gz"), ("reviewerID", "asin", "overall", "unixReviewTime"), 1.0,
                          json.loads, "a JSON object", _fields_2018, ITEM_FIELDS_OLDER),
    "amazon2014": Release("amazon2014", r"reviews_(?P<category>.+)\.json(\.gz)?", "reviews_<Category>[_5].json[.gz]",
                          (".json", ".json.gz"), ("reviewerID", "asin", "overall", "unixReviewTime"), 1.0,
                          ast.literal_eval, "a Python dict literal", _fields_2014, ITEM_FIELDS_OLDER),
}


def _reviews(path, release):
    """The interactions of a review file (JSON lines)."""
    columns = InteractionColumns()
    user, item, rating, time = release.review_keys
    for number, record in records(path, json.loads, "a JSON object"):
        user_id, item_id, stars, timestamp = require(record, release.review_keys, path, number)
        columns.append(str(user_id), str(item_id), number_or_error(stars, path, number, rating),
                       number_or_error(timestamp, path, number, time) * release.time_scale)
    return columns.frame()


def _metadata(path, release, reviewed):
    """Item rows and image URLs of the metadata lines of reviewed items (an item's first line wins), and notes."""
    key = release.review_keys[1]
    rows, urls, seen, duplicates, unreviewed = [], {}, set(), 0, 0
    for number, record in records(path, release.meta_parse, release.meta_form):
        (item,) = require(record, (key,), path, number)
        item = str(item)
        if item not in reviewed:
            unreviewed += 1
            continue
        if item in seen:
            duplicates += 1
            continue
        seen.add(item)
        fields, url = release.describe(record, path, number)
        rows.append({"item_id": item, **fields})
        if url:
            urls[item] = str(url)
    notes = [f"{path}: {unreviewed} metadata lines of items without a review (not written)"]
    if duplicates:
        notes.append(f"{path}: {duplicates} repeated {key} lines (the first of each kept)")
    return rows, urls, notes


def read(recipe, raw, category=None):
    """One category of the release ``recipe`` from the folder ``raw``."""
    release = RELEASES[recipe]
    category, review_path = find_category(raw, recipe, release.review_pattern, release.review_example, category)
    base = re.sub(r"_5$", "", category)  # a 5-core review file shares its category's metadata
    meta_path = find_file(raw, [f"meta_{base}{suffix}" for suffix in release.meta_suffixes], recipe,
                          f"metadata file for {base}")
    interactions = _reviews(review_path, release)
    rows, urls, notes = _metadata(meta_path, release, set(interactions["item_id"].cat.categories))
    items = pd.DataFrame(rows, columns=["item_id", *release.item_fields])
    return RawDataset(name=f"{recipe}-{category}", interactions=interactions, items=items,
                      item_fields=release.item_fields, images=urls, images_are_urls=True, notes=notes)

"""MicroLens (Ni et al., Westlake University): micro-video clicks with cover images.

A subset (e.g. ``MicroLens-100k``) is ``<Subset>_pairs.csv`` (user, item, timestamp; a header line such
as ``user,item,timestamp`` or ``userID,videoID,timestamp`` is optional), an optional title file
``<Subset>_title_en.csv`` (``item,title`` lines, split at the first comma: titles hold unquoted commas;
``<Subset>_titles.csv`` for MicroLens-50k) and the cover folder ``<Subset>_covers/<item>.jpg``.
Timestamps are kept in the file's unit.
"""

import csv
import os

import pandas as pd

from recbole_gen.data.recipes.raw import InteractionColumns, RawDataset, find_category, image_files, lines, number_or_error

USER_COLUMNS, ITEM_COLUMNS, TIME_COLUMNS = ("user", "userid", "user_id"), ("item", "videoid", "item_id"), ("timestamp",)


def _header_positions(header, path):
    names = [name.strip().lower() for name in header]
    positions = []
    for accepted in (USER_COLUMNS, ITEM_COLUMNS, TIME_COLUMNS):
        matches = [index for index, name in enumerate(names) if name in accepted]
        if not matches:
            raise ValueError(f"{path}, line 1: header {header} has no column named {' or '.join(accepted)}")
        positions.append(matches[0])
    return positions


def _pairs(path):
    columns = InteractionColumns(with_rating=False)
    positions = [0, 1, 2]
    for number, line in lines(path):
        row = next(csv.reader([line]))
        if number == 1 and not row[-1].strip().replace(".", "", 1).isdigit():
            positions = _header_positions(row, path)
            continue
        if len(row) <= max(positions):
            raise ValueError(f"{path}, line {number}: {len(row)} fields, expected user, item, timestamp")
        user, item, timestamp = (row[position].strip() for position in positions)
        if not user or not item:
            raise ValueError(f"{path}, line {number}: empty user or item")
        columns.append(user, item, None, number_or_error(timestamp, path, number, "timestamp"))
    return columns.frame()


def _titles(path, wanted, notes):
    rows, seen, repeated = [], set(), 0
    for number, line in lines(path):
        item, comma, title = line.partition(",")
        item = item.strip()
        if number == 1 and not item.isdigit():
            continue  # a header line
        if not comma or not item:
            raise ValueError(f"{path}, line {number}: expected 'item,title', got {line[:80]!r}")
        if title.startswith('"'):  # a quoted title (pandas-written files quote titles holding commas)
            title = next(csv.reader([title]))[0]
        if item in seen:
            repeated += 1
        elif item in wanted:
            seen.add(item)
            rows.append({"item_id": item, "title": title})
    if repeated:
        notes.append(f"{path}: {repeated} repeated item lines (the first of each kept)")
    return pd.DataFrame(rows, columns=["item_id", "title"])


def read(raw, category=None):
    """The MicroLens subset in ``raw`` (``category``: its file prefix, e.g. MicroLens-100k, if several)."""
    subset, pairs_path = find_category(raw, "microlens", r"(?P<category>.+)_pairs\.csv", "<Subset>_pairs.csv", category)
    interactions = _pairs(pairs_path)
    wanted = set(interactions["item_id"].cat.categories)
    notes = []
    title_paths = [os.path.join(raw, f"{subset}_{name}.csv") for name in ("title_en", "titles")]
    title_path = next((path for path in title_paths if os.path.isfile(path)), None)
    if title_path is None:
        notes.append(f"no title file ({' or '.join(title_paths)}): items have no text")
        items = pd.DataFrame(columns=["item_id", "title"])
    else:
        items = _titles(title_path, wanted, notes)
    covers = os.path.join(raw, f"{subset}_covers")
    no_image_source = None
    if not os.path.isdir(covers):
        no_image_source = f"no cover folder {covers} (unzip {subset}_covers.zip into {raw})"
    return RawDataset(name=subset, interactions=interactions, items=items, item_fields={"title": "token_seq"},
                      images=image_files(covers) if no_image_source is None else {},
                      no_image_source=no_image_source, notes=notes)

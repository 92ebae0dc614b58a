"""MovieLens 1M (GroupLens), from its raw files or from RecBole's atomic files, joined with posters.

- Raw: ``ratings.dat`` (UserID::MovieID::Rating::Timestamp), ``movies.dat`` (MovieID::Title::Genres,
  latin-1; "Toy Story (1995)" -> movie_title "Toy Story", release_year "1995"; genres split at '|') and,
  when present, ``users.dat`` (UserID::Gender::Age::Occupation::Zip-code), written with RecBole's ml-1m
  field names.
- Atomic: RecBole's ``ml-1m.inter`` (and ``ml-1m.item``, ``ml-1m.user`` when present), used when there is
  no ``ratings.dat``.

MovieLens ships no images: ``posters`` is a folder of files named by movie id, ``poster_urls`` a CSV of
``movie_id,url`` lines (a header line is optional).
"""

import csv
import os
import re

import pandas as pd

from recbole_gen.data.recipes.raw import InteractionColumns, RawDataset, image_files, lines, number_or_error

NAME = "ml-1m"
ITEM_FIELDS = {"movie_title": "token_seq", "release_year": "token", "genre": "token_seq"}
USER_FIELDS = {"age": "token", "gender": "token", "occupation": "token", "zip_code": "token"}
ATOMIC_TYPES = ("token", "token_seq", "float")
TITLE_YEAR = re.compile(r"(?P<title>.*\S)\s*\((?P<year>\d{4})\)\s*")


def _dat(path, n_fields):
    """(line number, fields) of a '::'-separated file (latin-1: movies.dat holds accented titles)."""
    for number, line in lines(path, encoding="latin-1"):
        fields = line.split("::")
        if len(fields) != n_fields:
            raise ValueError(f"{path}, line {number}: {len(fields)} '::'-separated fields, expected {n_fields}")
        yield number, fields


def _raw_interactions(path):
    columns = InteractionColumns()
    for number, (user, movie, rating, timestamp) in _dat(path, 4):
        columns.append(user, movie, number_or_error(rating, path, number, "Rating"),
                       number_or_error(timestamp, path, number, "Timestamp"))
    return columns.frame()


def _raw_movies(path):
    rows = []
    for _, (movie, title, genres) in _dat(path, 3):
        match = TITLE_YEAR.fullmatch(title)
        title, year = (match["title"], match["year"]) if match else (title, "")
        rows.append({"item_id": movie, "movie_title": title, "release_year": year, "genre": genres.split("|")})
    return pd.DataFrame(rows, columns=["item_id", *ITEM_FIELDS])


def _raw_users(path):
    rows = [{"user_id": user, "age": age, "gender": gender, "occupation": occupation, "zip_code": zip_code}
            for _, (user, gender, age, occupation, zip_code) in _dat(path, 5)]
    return pd.DataFrame(rows, columns=["user_id", *USER_FIELDS])


def _atomic(path, id_field):
    """A RecBole atomic file as strings, and its fields' types (every field but ``id_field``)."""
    with open(path, encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split("\t")
    names, types = [], {}
    for column in header:
        name, _, kind = column.partition(":")
        if kind not in ATOMIC_TYPES:
            raise ValueError(f"{path}, line 1: column {column!r} is not name:type with a type among {ATOMIC_TYPES}")
        names.append(name)
        types[name] = kind
    if id_field not in names:
        raise ValueError(f"{path}, line 1: no {id_field} column in {header}")
    try:
        table = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=csv.QUOTE_NONE)
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: {error}") from None
    table.columns = names
    del types[id_field]
    return table, types


def _atomic_interactions(path):
    table, types = _atomic(path, "user_id")
    missing = [name for name in ("item_id", "timestamp") if name not in types]
    if missing:
        raise ValueError(f"{path}, line 1: no {', '.join(missing)} column; an .inter file needs user_id, item_id, timestamp")
    numbers = [name for name in ("rating", "timestamp") if name in types]
    for name in numbers:
        values = pd.to_numeric(table[name], errors="coerce")
        if values.isna().any():
            row = int(values.isna().to_numpy().argmax())
            raise ValueError(f"{path}, line {row + 2}: {name} must be a number, not {table[name].iloc[row]!r}")
        table[name] = values.astype("float64")
    return table[["user_id", "item_id", *numbers]]


def _poster_urls(path):
    urls, first_line = {}, {}
    for number, line in lines(path):
        movie, comma, url = (part.strip() for part in line.partition(","))
        if number == 1 and not movie.isdigit():
            continue  # a header line
        if not comma or not movie or not url:
            raise ValueError(f"{path}, line {number}: expected 'movie_id,url', got {line[:80]!r}")
        if movie in urls:
            raise ValueError(f"{path}, line {number}: movie {movie} already has a URL (line {first_line[movie]})")
        urls[movie], first_line[movie] = url, number
    return urls


def read(raw, posters=None, poster_urls=None):
    """MovieLens 1M from ``raw`` with posters from a folder or a URL list (at most one)."""
    if posters is not None and poster_urls is not None:
        raise ValueError("ml-1m: pass one of --posters and --poster_urls, not both")
    ratings, atomic_inter = os.path.join(raw, "ratings.dat"), os.path.join(raw, f"{NAME}.inter")
    users, user_fields, notes = None, {}, []
    if os.path.isfile(ratings):
        interactions = _raw_interactions(ratings)
        movies = os.path.join(raw, "movies.dat")
        if not os.path.isfile(movies):
            raise FileNotFoundError(f"ml-1m: {ratings} needs {movies} (MovieID::Title::Genres) beside it")
        items, item_fields = _raw_movies(movies), ITEM_FIELDS
        if os.path.isfile(os.path.join(raw, "users.dat")):
            users, user_fields = _raw_users(os.path.join(raw, "users.dat")), USER_FIELDS
    elif os.path.isfile(atomic_inter):
        interactions = _atomic_interactions(atomic_inter)
        atomic_item, atomic_user = os.path.join(raw, f"{NAME}.item"), os.path.join(raw, f"{NAME}.user")
        items, item_fields = _atomic(atomic_item, "item_id") if os.path.isfile(atomic_item) else (None, {})
        if items is None:
            items = pd.DataFrame(columns=["item_id"])
            notes.append(f"no {atomic_item}: items have no text")
        if os.path.isfile(atomic_user):
            users, user_fields = _atomic(atomic_user, "user_id")
    else:
        raise FileNotFoundError(f"ml-1m: neither ratings.dat (the GroupLens release) nor {NAME}.inter "
                                f"(RecBole's atomic files) in {raw}")
    images, no_image_source = {}, None
    if posters is not None:
        if not os.path.isdir(posters):
            raise FileNotFoundError(f"ml-1m: --posters {posters} is not a folder")
        images = image_files(posters)
    elif poster_urls is not None:
        if not os.path.isfile(poster_urls):
            raise FileNotFoundError(f"ml-1m: --poster_urls {poster_urls} is not a file")
        images = _poster_urls(poster_urls)
    else:
        no_image_source = ("MovieLens ships no images: pass --posters DIR (files named by movie id) or "
                           "--poster_urls FILE (movie_id,url lines)")
    return RawDataset(name=NAME, interactions=interactions, items=items, item_fields=item_fields,
                      images=images, images_are_urls=poster_urls is not None, no_image_source=no_image_source,
                      users=users, user_fields=user_fields, notes=notes)

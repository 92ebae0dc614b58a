"""H&M Personalized Fashion Recommendations (Kaggle): purchases of articles with product photos.

``transactions_train.csv`` (t_dat, customer_id, article_id, price, sales_channel_id), ``articles.csv``
(article_id, prod_name, product_type_name, product_group_name, colour_group_name, detail_desc, ...) and
``images/<first 3 digits>/<article_id>.jpg``. article_id is zero-padded to 10 digits everywhere (read as a
number, 0108775015 would lose its leading zero). t_dat is a day: the timestamp is its midnight (UTC) in
seconds, and the purchases of one day keep their file order (every sort downstream is stable).
"""

import calendar
import os
from datetime import datetime

import pandas as pd

from recbole_gen.data.recipes.raw import InteractionColumns, RawDataset, find_file, image_files, lines

NAME = "hm"
TRANSACTION_COLUMNS = ["t_dat", "customer_id", "article_id"]
# articles.csv column -> (.item field, RecBole type)
ARTICLE_FIELDS = {"prod_name": ("title", "token_seq"), "product_type_name": ("product_type", "token"),
                  "product_group_name": ("product_group", "token"), "colour_group_name": ("colour", "token"),
                  "detail_desc": ("description", "token_seq")}
ARTICLE_DIGITS = 10


def _day(text, path, number):
    try:
        return calendar.timegm(datetime.strptime(text, "%Y-%m-%d").timetuple())
    except ValueError:
        raise ValueError(f"{path}, line {number}: t_dat {text!r} is not a YYYY-MM-DD date") from None


def _article(text, path, number):
    if not text.isdigit() or len(text) > ARTICLE_DIGITS:
        raise ValueError(f"{path}, line {number}: article_id {text!r} is not a number of at most {ARTICLE_DIGITS} digits")
    return text.zfill(ARTICLE_DIGITS)


def _transactions(path):
    """Purchases, streamed: 31M lines, ~1.4M customers, ~105k articles and ~730 days (each parsed once)."""
    rows = lines(path)
    header_line, header = next(rows, (1, ""))
    header = header.split(",")  # the file has no quoted fields
    missing = [column for column in TRANSACTION_COLUMNS if column not in header]
    if missing:
        raise ValueError(f"{path}, line {header_line}: no column {', '.join(missing)}; found {header}")
    day_at, customer_at, article_at = (header.index(column) for column in TRANSACTION_COLUMNS)
    columns, days, articles = InteractionColumns(with_rating=False), {}, {}
    for number, line in rows:
        fields = line.split(",")
        if len(fields) != len(header):
            raise ValueError(f"{path}, line {number}: {len(fields)} fields, expected {len(header)} as in the header")
        day, customer, article = fields[day_at].strip(), fields[customer_at].strip(), fields[article_at].strip()
        if not customer:
            raise ValueError(f"{path}, line {number}: empty customer_id")
        if day not in days:
            days[day] = _day(day, path, number)
        if article not in articles:
            articles[article] = _article(article, path, number)
        columns.append(customer, articles[article], None, days[day])
    return columns.frame()


def _articles(path, wanted, notes):
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except pd.errors.ParserError as error:
        raise ValueError(f"{path}: {error}") from None
    missing = [column for column in ["article_id", *ARTICLE_FIELDS] if column not in table.columns]
    if missing:
        raise ValueError(f"{path}, line 1: no column {', '.join(missing)}; found {list(table.columns)}")
    table = table[["article_id", *ARTICLE_FIELDS]].copy()
    table["article_id"] = table["article_id"].str.strip().str.zfill(ARTICLE_DIGITS)
    repeated = table["article_id"].duplicated()
    if repeated.any():
        notes.append(f"{path}: {int(repeated.sum())} repeated article_id rows (the first of each kept)")
    table = table[~repeated & table["article_id"].isin(wanted)]
    return table.rename(columns={"article_id": "item_id", **{raw: name for raw, (name, _) in ARTICLE_FIELDS.items()}})


def _images(folder):
    """Zero-padded article id -> photo, from images/<first 3 digits>/<article_id>.jpg."""
    found = {}
    for name in sorted(os.listdir(folder)):
        if os.path.isdir(os.path.join(folder, name)):
            for stem, path in image_files(os.path.join(folder, name)).items():
                found[stem.zfill(ARTICLE_DIGITS)] = path
    return found


def read(raw):
    """H&M from the Kaggle files in ``raw``."""
    if not os.path.isdir(raw):
        raise FileNotFoundError(f"hm: the raw folder {raw} does not exist")
    transactions = find_file(raw, ["transactions_train.csv"], NAME, "transaction file")
    articles = find_file(raw, ["articles.csv"], NAME, "article file")
    interactions, notes = _transactions(transactions), []
    items = _articles(articles, set(interactions["item_id"].cat.categories), notes)
    photos, no_image_source = os.path.join(raw, "images"), None
    if not os.path.isdir(photos):
        no_image_source = f"no photo folder {photos} (images/<first 3 digits>/<article_id>.jpg)"
    return RawDataset(name=NAME, interactions=interactions, items=items,
                      item_fields={name: kind for name, kind in ARTICLE_FIELDS.values()},
                      images=_images(photos) if no_image_source is None else {},
                      no_image_source=no_image_source, notes=notes)

"""Prepare a dataset: the upstream raw files in, RecBole atomic files and item images out.

    python -m recbole_gen.data.prepare RECIPE --raw DIR --out OUT [--category C] [--min_rating R] [--k_core K]
        [--dedup] [--keep_items_without_image] [--posters DIR | --poster_urls FILE] [--fetch_images]

RECIPE is one of ``recbole_gen.data.recipes.RECIPES``. Writes, into ``OUT/<name>/``: ``<name>.inter``
(user_id, item_id, rating where the source has one, timestamp), ``<name>.item`` (item_id and text
fields), ``<name>.user`` where the source has users, and the images: ``images/<item token>.<ext>`` for
sources with image files, ``image_urls.tsv`` (a header line, then ``item_id<TAB>url``) for sources with
image URLs, which ``--fetch_images`` or ``python -m recbole_gen.data.fetch_images`` downloads into ``images/``.

Filters, in this order, each counted in the summary: ``--min_rating`` (keep rating >= R), ``--dedup``
(a user's first interaction with an item), items without an image (dropped unless
``--keep_items_without_image``: a model that generates item images learns and is scored on them), and
``--k_core`` (users and items with fewer than K interactions removed, repeatedly, until none is left).
Interactions are written in time order, ties in file order.
"""

import argparse
import csv
import os
import re
import shlex
import shutil
from collections import namedtuple
from dataclasses import dataclass, field

import pandas as pd
from tqdm import tqdm

from recbole_gen.data.recipes import RECIPES
from recbole_gen.fitting import atomic_file

Counts = namedtuple("Counts", "interactions users items")
RECIPE_OPTIONS = ("category", "posters", "poster_urls")
# A token names an image file ("." and ".." cannot) and a field of a tab-separated file.
BAD_TOKEN = re.compile(r'[\s"/\\]|^\.+$')
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass
class Report:
    """What :func:`prepare` read, removed and wrote; :meth:`summary` is what the command prints."""

    name: str
    folder: str
    image_kind: str  # "image file", "image URL", or None when the source has no images
    read: Counts
    removed: list = field(default_factory=list)  # (filter, Counts removed by it)
    final: Counts = None
    n_with_image: int = 0
    n_without_metadata: int = 0
    no_image_source: str = None
    notes: list = field(default_factory=list)
    written: list = field(default_factory=list)
    fetch_summary: str = None
    commands: list = field(default_factory=list)

    def summary(self):
        final = self.final or Counts(0, 0, 0)
        if self.image_kind is None:
            images = f"no item has an image ({self.no_image_source})"
        else:
            images = f"{self.n_with_image} of {final.items} items have an {self.image_kind}"
        lines = [f"{self.name}: {final.users} users, {final.items} items, {final.interactions} interactions; {images}",
                 f"  read: {_counted(self.read)}"]
        lines += [f"  removed by {label}: {_counted(counts)}" for label, counts in self.removed]
        lines.append(f"  items without metadata (no .item row): {self.n_without_metadata}")
        lines += [f"  note: {note}" for note in self.notes]
        lines += [f"  wrote: {path}" for path in self.written]
        if self.fetch_summary:
            lines.append(self.fetch_summary)
        if self.commands:
            lines.append("next:")
            lines += [f"  {command}" for command in self.commands]
        return "\n".join(lines)


def _counted(counts):
    return f"{counts.interactions} interactions, {counts.users} users, {counts.items} items"


def _counts(interactions):
    return Counts(len(interactions), interactions["user_id"].nunique(), interactions["item_id"].nunique())


def _filter(report, label, interactions, keep):
    """``interactions`` where ``keep``, with what the filter removed counted in ``report``."""
    kept = interactions[keep]
    report.removed.append((label, Counts(*(before - after for before, after in zip(_counts(interactions), _counts(kept))))))
    return kept


def keep_k_core(interactions, k):
    """The largest part of ``interactions`` in which every user and every item has at least ``k``."""
    while True:
        user_counts = interactions.groupby("user_id", observed=True)["user_id"].transform("size")
        item_counts = interactions.groupby("item_id", observed=True)["item_id"].transform("size")
        keep = (user_counts >= k) & (item_counts >= k)
        if keep.all():
            return interactions
        interactions = interactions[keep]


def _text(value):
    """One line of text: control characters (tabs, newlines) become spaces, runs of spaces one space, and a
    double quote two single quotes (RecBole reads atomic files with CSV quoting)."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return " ".join(_CONTROL.sub(" ", str(value)).split()).replace('"', "''")


def _cell(value, kind):
    if kind == "float":
        return value
    if kind == "token_seq" and isinstance(value, (list, tuple)):  # a list of tokens: each one kept whole
        return " ".join(token for token in (_text(entry).replace(" ", "_") for entry in value) if token)
    return _text(value)


def _tokens(column):
    return column.cat.categories if isinstance(column.dtype, pd.CategoricalDtype) else column.unique()


def _check_ids(name, data):
    for column in ("user_id", "item_id"):
        bad = [str(token) for token in _tokens(data.interactions[column]) if not str(token) or BAD_TOKEN.search(str(token))]
        if bad:
            raise ValueError(f"{name}: {column} {bad[0]!r} cannot be a token (empty, only dots, or holds whitespace, a "
                             f"quote or a path separator); {len(bad)} such ids")
    for table, id_field in ((data.items, "item_id"), (data.users, "user_id")):
        if table is not None and table[id_field].duplicated().any():
            token = table[id_field][table[id_field].duplicated()].iloc[0]
            raise ValueError(f"{name}: {id_field} {token} has more than one row in the source's {id_field[:4]} table")


def _write_table(path, table, id_field, fields):
    columns = {id_field: table[id_field].astype(str)}
    for name, kind in fields.items():
        columns[name] = table[name].map(lambda value, kind=kind: _cell(value, kind))
    header = [f"{id_field}:token", *(f"{name}:{kind}" for name, kind in fields.items())]
    with atomic_file(path) as staging:
        pd.DataFrame(columns).to_csv(staging, sep="\t", index=False, header=header, quoting=csv.QUOTE_NONE)


def _write_interactions(path, interactions):
    frame = interactions.reset_index(drop=True).copy()
    timestamps = frame["timestamp"].astype("float64")
    if (timestamps == timestamps.round()).all():  # whole seconds are written without a fraction
        frame["timestamp"] = timestamps.astype("int64")
    header = ["user_id:token", "item_id:token", *(["rating:float"] if "rating" in frame else []), "timestamp:float"]
    with atomic_file(path) as staging:
        frame.to_csv(staging, sep="\t", index=False, header=header, quoting=csv.QUOTE_NONE)


def _link_images(files, folder):
    """Hard-link (or copy, across file systems) each item's image into ``folder`` as ``<token><ext>``; the
    folder is built beside and swapped in whole, so no image of an earlier run stays behind."""
    staging, old = f"{folder}.partial", f"{folder}.old"
    for leftover in (staging, old):  # an interrupted earlier run
        if os.path.isdir(leftover):
            shutil.rmtree(leftover)
    os.makedirs(staging)
    for token, source in tqdm(files.items(), desc="Link item images", ncols=100, mininterval=2):
        target = os.path.join(staging, token + os.path.splitext(source)[1])
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    if os.path.isdir(folder):
        os.replace(folder, old)
        os.replace(staging, folder)
        shutil.rmtree(old)
    else:
        os.replace(staging, folder)


def _write_urls(path, urls):
    with atomic_file(path) as staging, open(staging, "w", encoding="utf-8") as f:
        f.write("item_id\turl\n")
        for token, url in urls.items():
            if not url.strip() or re.search(r"\s", url.strip()):
                raise ValueError(f"the image URL of item {token} is empty or holds whitespace: {url!r}")
            f.write(f"{token}\t{url.strip()}\n")


def prepare(recipe, raw, out, *, name=None, min_rating=None, k_core=None, dedup=False,
            keep_items_without_image=False, fetch_images=False, **options):
    """Read ``raw`` with ``recipe``, filter, and write the dataset into ``out/<name>/``; returns the :class:`Report`.

    ``options`` are the recipe's own (``category``, ``posters``, ``poster_urls``); None means not given.
    """
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; recipes: {', '.join(sorted(RECIPES))}")
    read, accepted = RECIPES[recipe]
    given = {option: value for option, value in options.items() if value is not None}
    refused = [option for option in given if option not in accepted]
    if refused:
        takes = ", ".join(f"--{option}" for option in accepted) or "none"
        raise ValueError(f"{recipe} takes no --{refused[0]} (its own options: {takes})")
    data = read(raw, **given)
    name = name or data.name
    if data.no_image_source and not keep_items_without_image:
        raise FileNotFoundError(f"{recipe}: {data.no_image_source}; or pass --keep_items_without_image to prepare "
                                "the dataset without images (recbole_gen then renders metadata cards)")
    if min_rating is not None and "rating" not in data.interactions:
        raise ValueError(f"{recipe}: --min_rating needs ratings, and {recipe} has none")
    if fetch_images and not data.images_are_urls:
        raise ValueError(f"{recipe}: --fetch_images needs image URLs, and this source has none")
    _check_ids(name, data)
    kind = None if data.no_image_source else "image URL" if data.images_are_urls else "image file"

    interactions = data.interactions.sort_values("timestamp", kind="stable", ignore_index=True)
    report = Report(name=name, folder=os.path.join(out, name), image_kind=kind, read=_counts(interactions),
                    no_image_source=data.no_image_source, notes=list(data.notes))
    if min_rating is not None:
        interactions = _filter(report, f"rating < {min_rating:g}", interactions, interactions["rating"] >= min_rating)
    if dedup:
        interactions = _filter(report, "repeated user-item pairs (the first kept)", interactions,
                               ~interactions.duplicated(["user_id", "item_id"]))
    if kind and not keep_items_without_image:
        interactions = _filter(report, f"items without an {kind}", interactions,
                               interactions["item_id"].isin(list(data.images)))
    if k_core is not None:
        core = keep_k_core(interactions, k_core)
        interactions = _filter(report, f"{k_core}-core", interactions, interactions.index.isin(core.index))
    report.final = _counts(interactions)
    if not len(interactions):
        raise ValueError(f"{name}: no interaction is left after the filters:\n{report.summary()}")
    _write(report, data, interactions, fetch_images, out)
    return report


def _write(report, data, interactions, fetch_images, out):
    folder, name = report.folder, report.name
    os.makedirs(folder, exist_ok=True)
    image_dir, url_file = os.path.join(folder, "images"), os.path.join(folder, "image_urls.tsv")
    item_file, user_file, inter_file = (os.path.join(folder, f"{name}.{suffix}") for suffix in ("item", "user", "inter"))
    item_tokens = set(str(token) for token in interactions["item_id"].unique())
    items = data.items[data.items["item_id"].astype(str).isin(item_tokens)]
    report.n_without_metadata = len(item_tokens) - len(items)
    kept_images = {token: source for token, source in data.images.items() if token in item_tokens}
    report.n_with_image = len(kept_images)
    written = set()
    if report.image_kind == "image file":
        _link_images(kept_images, image_dir)
        report.written.append(f"{image_dir}/ ({len(kept_images)} images)")
    elif report.image_kind == "image URL":
        _write_urls(url_file, kept_images)
        written.add(url_file)
        report.written.append(f"{url_file} ({len(kept_images)} URLs)")
    if data.item_fields and len(items):
        _write_table(item_file, items, "item_id", data.item_fields)
        written.add(item_file)
        report.written.append(item_file)
    if data.users is not None:
        user_tokens = set(str(token) for token in interactions["user_id"].unique())
        _write_table(user_file, data.users[data.users["user_id"].astype(str).isin(user_tokens)], "user_id",
                     data.user_fields)
        written.add(user_file)
        report.written.append(user_file)
    _write_interactions(inter_file, interactions)
    report.written.append(inter_file)
    for stale in (url_file, item_file, user_file):  # RecBole would read an earlier run's file as this dataset's
        if stale not in written and os.path.isfile(stale):
            os.remove(stale)
            report.notes.append(f"removed {stale}, written by an earlier run (this run has none)")

    if fetch_images:
        from recbole_gen.data.fetch_images import fetch_images as fetch  # the fetcher is only needed when asked for

        report.fetch_summary = fetch(kept_images, image_dir).summary()
    elif report.image_kind == "image URL":
        report.commands.append(f"python -m recbole_gen.data.fetch_images --urls {shlex.quote(url_file)} "
                               f"--out {shlex.quote(image_dir)}")
    # load_col=None: every column of every atomic file (RecBole's default for a dataset it does not know loads
    # user_id and item_id only, and sequential models need the timestamp)
    run = (f"python run_recbole_gen.py --model=GenRec --data_path={shlex.quote(out)} --dataset={shlex.quote(name)} "
           "--load_col=None")
    if report.image_kind:
        run += f" --image_dir={shlex.quote(image_dir)}"
    report.commands.append(run)


def _positive(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser():
    parser = argparse.ArgumentParser(prog="python -m recbole_gen.data.prepare", description=__doc__.splitlines()[0])
    parser.add_argument("recipe", choices=sorted(RECIPES), help="the source's recipe")
    parser.add_argument("--raw", required=True, help="folder holding the source's raw files")
    parser.add_argument("--out", required=True, help="output folder (a run's data_path); the dataset goes into OUT/NAME/")
    parser.add_argument("--name", help="dataset name (default: the recipe's, e.g. amazon2023-All_Beauty, ml-1m)")
    parser.add_argument("--category", help="the Amazon category (e.g. All_Beauty, Books_5 for a 5-core file) or "
                                           "MicroLens subset (e.g. MicroLens-100k) when the raw folder holds several")
    parser.add_argument("--min_rating", type=float, help="keep interactions rated at least this")
    parser.add_argument("--k_core", type=_positive, help="keep the K-core: every user and item with at least K interactions")
    parser.add_argument("--dedup", action="store_true", help="keep a user's first interaction with each item only")
    parser.add_argument("--keep_items_without_image", action="store_true",
                        help="keep items that have no image (default: their interactions are dropped)")
    parser.add_argument("--posters", help="ml-1m: folder of poster images named by movie id")
    parser.add_argument("--poster_urls", help="ml-1m: CSV of movie_id,url lines")
    parser.add_argument("--fetch_images", action="store_true", help="download the image URLs into OUT/NAME/images now")
    return parser


def main(argv=None):
    """The command line: prepare, print the summary and the commands that use the output; returns the Report."""
    args = build_parser().parse_args(argv)
    if args.name is not None and (not args.name or BAD_TOKEN.search(args.name)):
        raise ValueError(f"--name {args.name!r} must be a non-empty folder name without whitespace or separators")
    report = prepare(args.recipe, args.raw, args.out, name=args.name, min_rating=args.min_rating, k_core=args.k_core,
                     dedup=args.dedup, keep_items_without_image=args.keep_items_without_image,
                     fetch_images=args.fetch_images, **{option: getattr(args, option) for option in RECIPE_OPTIONS})
    print(report.summary())
    return report


if __name__ == "__main__":
    main()

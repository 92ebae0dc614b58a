"""The Amazon recipes (2023, 2018, 2014) on tiny files in each release's format: rows, image URLs, filters,
category selection, and errors naming the file and line."""

import gzip
import json
import os

import pytest

from recbole_gen.data.prepare import main
import test_fetch_images
from test_prepare import table


def write_lines(path, lines):
    """One line per entry (dicts as JSON, strings as they are), gzipped when the name ends in .gz."""
    text = "".join((entry if isinstance(entry, str) else json.dumps(entry)) + "\n" for entry in lines)
    with (gzip.open(path, "wt", encoding="utf-8") if str(path).endswith(".gz") else open(path, "w", encoding="utf-8")) as f:
        f.write(text)


def review_2023(user, item, rating, millis):
    return {"rating": rating, "title": "t", "text": "x", "images": [], "asin": f"{item}-v", "parent_asin": item,
            "user_id": user, "timestamp": millis, "helpful_vote": 0, "verified_purchase": True}


def meta_2023(item, title, images, categories=(), store="Shop"):
    return {"main_category": "All Beauty", "title": title, "average_rating": 4.5, "rating_number": 3, "features": [],
            "description": [], "price": None, "images": images, "videos": [], "store": store,
            "categories": list(categories), "details": {}, "parent_asin": item, "bought_together": None}


def image(hi_res, large, thumb="http://img/thumb.jpg", variant="MAIN"):
    return {"thumb": thumb, "large": large, "hi_res": hi_res, "variant": variant}


# A reviewed 4, B rated 2, C (no image) and D (no metadata); E has metadata but no review.
REVIEWS_2023 = [review_2023("U1", "A", 5.0, 1_600_000_000_500), review_2023("U2", "A", 4.0, 1_600_000_001_000),
                review_2023("U1", "B", 2.0, 1_600_000_002_000), review_2023("U2", "B", 5.0, 1_600_000_003_000),
                review_2023("U3", "A", 5.0, 1_600_000_004_000), review_2023("U3", "C", 5.0, 1_600_000_005_000),
                review_2023("U1", "D", 4.0, 1_600_000_006_000)]
META_2023 = [meta_2023("A", "Soap\tbar\n(big)", [image("http://img/A-hi.jpg", "http://img/A-large.jpg"),
                                                 image("http://img/A2-hi.jpg", "http://img/A2.jpg", variant="PT01")],
                       ["Beauty & Personal Care", "Skin Care"]),
             meta_2023("B", 'The "best" cream', [image(None, "http://img/B-large.jpg")], store=None),
             meta_2023("C", "No picture", []),
             meta_2023("E", "Never reviewed", [image("http://img/E.jpg", "http://img/E.jpg")]),
             meta_2023("A", "A again", [image("http://img/A-other.jpg", "http://img/A-other.jpg")])]
NAME_2023 = "amazon2023-All_Beauty"
server = test_fetch_images.server  # the local HTTP server fixture


@pytest.fixture
def raw_2023(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_lines(raw / "All_Beauty.jsonl.gz", REVIEWS_2023)
    write_lines(raw / "meta_All_Beauty.jsonl", META_2023)
    return raw


def test_2023_rows_urls_and_summary(raw_2023, tmp_path, capsys):
    out = tmp_path / "out"
    report = main(["amazon2023", "--raw", str(raw_2023), "--out", str(out)])
    folder = out / NAME_2023
    # C has no image and D no metadata (so no image): their interactions go; milliseconds become seconds
    assert table(folder / f"{NAME_2023}.inter") == [
        ["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
        ["U1", "A", "5.0", "1600000000.5"], ["U2", "A", "4.0", "1600000001.0"], ["U1", "B", "2.0", "1600000002.0"],
        ["U2", "B", "5.0", "1600000003.0"], ["U3", "A", "5.0", "1600000004.0"]]
    assert table(folder / f"{NAME_2023}.item") == [
        ["item_id:token", "title:token_seq", "main_category:token", "categories:token_seq", "store:token"],
        ["A", "Soap bar (big)", "All Beauty", "Beauty_&_Personal_Care Skin_Care", "Shop"],
        ["B", "The ''best'' cream", "All Beauty", "", ""]]
    # the first image, at its largest size: hi_res, else large
    assert table(folder / "image_urls.tsv") == [["item_id", "url"], ["A", "http://img/A-hi.jpg"],
                                                ["B", "http://img/B-large.jpg"]]
    assert not os.path.exists(folder / "images")
    printed = capsys.readouterr().out.splitlines()
    assert printed[:4] == [f"{NAME_2023}: 3 users, 2 items, 5 interactions; 2 of 2 items have an image URL",
                           "  read: 7 interactions, 3 users, 4 items",
                           "  removed by items without an image URL: 2 interactions, 0 users, 2 items",
                           "  items without metadata (no .item row): 0"]
    meta = raw_2023 / "meta_All_Beauty.jsonl"
    assert f"  note: {meta}: 1 metadata lines of items without a review (not written)" in printed
    assert f"  note: {meta}: 1 repeated parent_asin lines (the first of each kept)" in printed
    assert (f"  python -m recbole_gen.data.fetch_images --urls {folder / 'image_urls.tsv'} --out {folder / 'images'}"
            in printed)
    assert report.n_with_image == 2


def test_2023_min_rating_and_k_core(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_lines(raw / "All_Beauty.jsonl", REVIEWS_2023 + [review_2023("U3", "B", 4.0, 1_600_000_007_000),
                                                          review_2023("U2", "C", 5.0, 1_600_000_008_000)])
    write_lines(raw / "meta_All_Beauty.jsonl", META_2023)
    report = main(["amazon2023", "--raw", str(raw), "--out", str(out), "--min_rating", "4", "--k_core", "2",
                   "--keep_items_without_image"])
    # rating >= 4 drops (U1, B); the 2-core drops D (U1 only), then U1, left with A alone (without the rating
    # filter U1 would keep A and B). Whole seconds are written without a fraction.
    assert [(label, tuple(counts)) for label, counts in report.removed] == [("rating < 4", (1, 0, 0)),
                                                                            ("2-core", (2, 1, 1))]
    assert table(out / NAME_2023 / f"{NAME_2023}.inter")[1:] == [
        ["U2", "A", "4.0", "1600000001"], ["U2", "B", "5.0", "1600000003"], ["U3", "A", "5.0", "1600000004"],
        ["U3", "C", "5.0", "1600000005"], ["U3", "B", "4.0", "1600000007"], ["U2", "C", "5.0", "1600000008"]]
    assert (report.final.users, report.final.items, report.final.interactions, report.n_with_image) == (2, 3, 6, 2)
    without_rating_filter = main(["amazon2023", "--raw", str(raw), "--out", str(out), "--k_core", "2",
                                  "--keep_items_without_image"])
    assert without_rating_filter.final.users == 3


def test_2023_review_without_metadata_is_kept_and_counted(raw_2023, tmp_path, capsys):
    report = main(["amazon2023", "--raw", str(raw_2023), "--out", str(tmp_path / "out"), "--keep_items_without_image"])
    assert report.final.items == 4 and report.n_without_metadata == 1 and report.n_with_image == 2
    assert "2 of 4 items have an image URL" in capsys.readouterr().out


def test_category_selection(raw_2023, tmp_path):
    write_lines(raw_2023 / "Toys_and_Games.jsonl", [review_2023("U9", "T", 3.0, 1)])
    with pytest.raises(ValueError, match=r"2 categories in .*\(All_Beauty, Toys_and_Games\); pass --category"):
        main(["amazon2023", "--raw", str(raw_2023), "--out", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match=r"amazon2023: no metadata file for Toys_and_Games in .*: expected "
                                                r"meta_Toys_and_Games.jsonl or meta_Toys_and_Games.jsonl.gz"):
        main(["amazon2023", "--raw", str(raw_2023), "--out", str(tmp_path / "out"), "--category", "Toys_and_Games"])
    with pytest.raises(FileNotFoundError, match=r"no file Books.jsonl\[.gz\] .* categories there: \['All_Beauty', "
                                                r"'Toys_and_Games'\]"):
        main(["amazon2023", "--raw", str(raw_2023), "--out", str(tmp_path / "out"), "--category", "Books"])
    report = main(["amazon2023", "--raw", str(raw_2023), "--out", str(tmp_path / "out"), "--category", "All_Beauty"])
    assert report.name == NAME_2023


def test_missing_review_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"amazon2023: no file matching <Category>.jsonl\[.gz\] in"):
        main(["amazon2023", "--raw", str(tmp_path), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("bad_line, message", [
    ('{"rating": 5.0, "user_id": "U1"', r"line 2: not a JSON object"),
    (json.dumps({"rating": 5.0, "user_id": "U1", "timestamp": 3}), r"line 2: missing parent_asin \(each line needs "
                                                                   r"user_id, parent_asin, rating, timestamp\)"),
    (json.dumps({"rating": "five", "user_id": "U1", "parent_asin": "A", "timestamp": 3}), r"line 2: rating must be a "
                                                                                          r"number, not 'five'"),
])
def test_malformed_review_line_names_file_and_line(tmp_path, bad_line, message):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_lines(raw / "All_Beauty.jsonl", [REVIEWS_2023[0], bad_line])
    write_lines(raw / "meta_All_Beauty.jsonl", META_2023)
    with pytest.raises(ValueError, match=f"{raw / 'All_Beauty.jsonl'}, {message}"):
        main(["amazon2023", "--raw", str(raw), "--out", str(tmp_path / "out")])


def review_older(user, item, rating, seconds):
    return {"reviewerID": user, "asin": item, "reviewerName": "n", "overall": rating, "summary": "s",
            "reviewText": "r", "unixReviewTime": seconds, "reviewTime": "01 1, 2014"}


REVIEWS_OLDER = [review_older("R1", "X", 5.0, 1_400_000_000), review_older("R2", "X", 3.0, 1_400_000_000),
                 review_older("R1", "Y", 4.0, 1_300_000_000)]


def test_2018_five_core_file_with_high_resolution_images(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_lines(raw / "Books_5.json.gz", REVIEWS_OLDER)
    write_lines(raw / "meta_Books.json.gz", [
        {"asin": "X", "title": "Book X", "category": ["Books", "Literature & Fiction"], "brand": "Pub",
         "imageURL": ["http://img/X-small.jpg"], "imageURLHighRes": ["http://img/X-big.jpg", "http://img/X2.jpg"]},
        {"asin": "Y", "title": "Book Y", "category": [], "imageURL": ["http://img/Y-small.jpg"], "imageURLHighRes": []}])
    report = main(["amazon2018", "--raw", str(raw), "--out", str(out)])
    name = "amazon2018-Books_5"
    assert report.name == name
    assert table(out / name / f"{name}.inter") == [["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
                                                   ["R1", "Y", "4.0", "1300000000"], ["R1", "X", "5.0", "1400000000"],
                                                   ["R2", "X", "3.0", "1400000000"]]
    assert table(out / name / f"{name}.item") == [["item_id:token", "title:token_seq", "categories:token_seq", "brand:token"],
                                                  ["X", "Book X", "Books Literature_&_Fiction", "Pub"], ["Y", "Book Y", "", ""]]
    assert table(out / name / "image_urls.tsv") == [["item_id", "url"], ["X", "http://img/X-big.jpg"],
                                                    ["Y", "http://img/Y-small.jpg"]]


META_2014 = ["{'asin': 'X', 'title': \"Book X's tale\", 'imUrl': 'http://img/X.jpg', 'brand': 'Pub', "
             "'salesRank': {'Books': 12}, 'categories': [['Books', 'Fiction'], ['Books', 'Kindle Store']]}",
             "{'asin': 'Y', 'imUrl': 'http://img/Y.jpg', 'categories': [['Books']]}"]


def test_2014_python_literal_metadata(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    raw.mkdir()
    write_lines(raw / "reviews_Books_5.json.gz", REVIEWS_OLDER)
    write_lines(raw / "meta_Books.json.gz", META_2014)
    main(["amazon2014", "--raw", str(raw), "--out", str(out)])
    name = "amazon2014-Books_5"
    assert table(out / name / f"{name}.item") == [["item_id:token", "title:token_seq", "categories:token_seq", "brand:token"],
                                                  ["X", "Book X's tale", "Books Fiction Kindle_Store", "Pub"],
                                                  ["Y", "", "Books", ""]]
    assert table(out / name / "image_urls.tsv") == [["item_id", "url"], ["X", "http://img/X.jpg"], ["Y", "http://img/Y.jpg"]]
    assert len(table(out / name / f"{name}.inter")) == 4


def test_2014_metadata_is_never_evaluated(tmp_path):
    raw, marker = tmp_path / "raw", tmp_path / "evaluated"
    raw.mkdir()
    write_lines(raw / "reviews_Books.json", REVIEWS_OLDER)
    write_lines(raw / "meta_Books.json", [META_2014[0], f"__import__('pathlib').Path({str(marker)!r}).touch()"])
    with pytest.raises(ValueError, match=r"meta_Books.json, line 2: not a Python dict literal"):
        main(["amazon2014", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert not marker.exists()


def test_2023_fetch_images_downloads_the_urls_into_the_image_folder(tmp_path, capsys, server):
    raw = tmp_path / "raw"
    raw.mkdir()
    write_lines(raw / "All_Beauty.jsonl", REVIEWS_2023[:5])
    write_lines(raw / "meta_All_Beauty.jsonl", [meta_2023("A", "Soap", [image(server.url("/a.png"), None)]),
                                                meta_2023("B", "Cream", [image(server.url("/missing"), None)])])
    out = tmp_path / "out"
    main(["amazon2023", "--raw", str(raw), "--out", str(out), "--fetch_images"])
    images = out / NAME_2023 / "images"
    assert sorted(os.listdir(images)) == ["A.png", "fetch_report.json"]
    printed = capsys.readouterr().out
    assert "1 fetched" in printed and "http_404: 1 (B)" in printed

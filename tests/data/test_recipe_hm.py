"""The H&M recipe: zero-padded article ids, days as timestamps with same-day purchases in file order, photos in
images/<first 3 digits>/, errors naming the file and line."""

import calendar
import os

import pytest

from recbole_gen.data.prepare import main
from test_prepare import save_image, table

HEADER = "t_dat,customer_id,article_id,price,sales_channel_id"
# 663713001 appears without its leading zero; the 19th comes after the 21st in the file.
TRANSACTIONS = ["2018-09-20,c1,0108775015,0.0508,2", "2018-09-20,c1,0663713001,0.0508,2", "2018-09-20,c2,108775015,0.03,1",
                "2018-09-21,c1,0108775044,0.02,2", "2018-09-19,c3,0663713001,0.01,1", "2018-09-20,c1,0108775044,0.02,2"]
ARTICLES = """article_id,product_code,prod_name,product_type_no,product_type_name,product_group_name,colour_group_code,\
colour_group_name,detail_desc
0108775015,0108775,Strap top,253,Vest top,Garment Upper body,9,Black,Jersey top with narrow shoulder straps.
0108775044,0108775,Strap top,253,Vest top,Garment Upper body,10,White,"Jersey top, with ""quotes""
and a newline"
663713001,0663713,Atlanta Push Body Harlow,283,Underwear body,Underwear,9,Black,Lace push-up body
0999999999,0999999,Never bought,1,Other,Other,9,Black,
"""


def day(text):
    return str(calendar.timegm(tuple(map(int, text.split("-"))) + (0, 0, 0)))


def write_hm(raw, transactions=TRANSACTIONS, photos=("0108775015", "0108775044")):
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "transactions_train.csv").write_text("\n".join([HEADER, *transactions]) + "\n")
    (raw / "articles.csv").write_text(ARTICLES)
    for article in photos:
        save_image(raw / "images" / article[:3] / f"{article}.jpg")
    return raw


def test_rows_items_photos_and_same_day_order(tmp_path, capsys):
    raw, out = write_hm(tmp_path / "raw"), tmp_path / "out"
    report = main(["hm", "--raw", str(raw), "--out", str(out)])
    folder = out / "hm"
    # 0663713001 has no photo: its two purchases go (and c3 with them); the 20th keeps file order
    assert table(folder / "hm.inter") == [["user_id:token", "item_id:token", "timestamp:float"],
                                          ["c1", "0108775015", day("2018-09-20")], ["c2", "0108775015", day("2018-09-20")],
                                          ["c1", "0108775044", day("2018-09-20")], ["c1", "0108775044", day("2018-09-21")]]
    assert table(folder / "hm.item") == [
        ["item_id:token", "title:token_seq", "product_type:token", "product_group:token", "colour:token",
         "description:token_seq"],
        ["0108775015", "Strap top", "Vest top", "Garment Upper body", "Black", "Jersey top with narrow shoulder straps."],
        ["0108775044", "Strap top", "Vest top", "Garment Upper body", "White", "Jersey top, with ''quotes'' and a newline"]]
    assert sorted(os.listdir(folder / "images")) == ["0108775015.jpg", "0108775044.jpg"]
    assert capsys.readouterr().out.splitlines()[:3] == [
        "hm: 2 users, 2 items, 4 interactions; 2 of 2 items have an image file",
        "  read: 6 interactions, 3 users, 3 items",
        "  removed by items without an image file: 2 interactions, 1 users, 1 items"]
    assert report.final == (4, 2, 2)


def test_keep_items_without_photo_and_k_core(tmp_path):
    raw, out = write_hm(tmp_path / "raw"), str(tmp_path / "out")
    report = main(["hm", "--raw", str(raw), "--out", out, "--keep_items_without_image"])
    assert report.final == (6, 3, 3) and report.n_with_image == 2 and report.removed == []
    report = main(["hm", "--raw", str(raw), "--out", out, "--keep_items_without_image", "--k_core", "2"])
    # 2-core: c2 and c3 (one purchase each) go; then 0108775015 and 0663713001 have c1 alone and go; c1 keeps
    # its two purchases of 0108775044
    assert table(tmp_path / "out" / "hm" / "hm.inter")[1:] == [["c1", "0108775044", day("2018-09-20")],
                                                               ["c1", "0108775044", day("2018-09-21")]]
    assert [(label, tuple(counts)) for label, counts in report.removed] == [("2-core", (4, 2, 2))]
    assert report.n_with_image == 1 and report.final.items == 1


@pytest.mark.parametrize("bad_row, message", [
    ("2018-13-45,c4,0108775015,0.1,2", "t_dat '2018-13-45' is not a YYYY-MM-DD date"),
    ("2018-09-20,c4,01087x5015,0.1,2", "article_id '01087x5015' is not a number of at most 10 digits"),
    ("2018-09-20,,0108775015,0.1,2", "empty customer_id"),
    ("2018-09-20,c4,0108775015,0.1,2,extra", "6 fields, expected 5 as in the header"),
])
def test_malformed_transaction_names_file_and_line(tmp_path, bad_row, message):
    raw = write_hm(tmp_path / "raw", transactions=TRANSACTIONS + [bad_row])  # line 8: the header is line 1
    with pytest.raises(ValueError, match=f"{raw / 'transactions_train.csv'}, line 8: {message}"):
        main(["hm", "--raw", str(raw), "--out", str(tmp_path / "out")])


def test_missing_files_and_columns(tmp_path):
    raw = write_hm(tmp_path / "raw")
    os.remove(raw / "articles.csv")
    with pytest.raises(FileNotFoundError, match=r"hm: no article file in .*: expected articles.csv"):
        main(["hm", "--raw", str(raw), "--out", str(tmp_path / "out")])
    (raw / "articles.csv").write_text("article_id,prod_name\n0108775015,Strap top\n")
    with pytest.raises(ValueError, match=r"articles.csv, line 1: no column product_type_name, product_group_name"):
        main(["hm", "--raw", str(raw), "--out", str(tmp_path / "out")])
    (raw / "articles.csv").write_text(ARTICLES + "0108775016,0108775,Top,253,Vest top,Garment,9,Black,desc,extra\n")
    # pandas counts rows: the quoted two-line description is one
    with pytest.raises(ValueError, match=r"articles.csv: Error tokenizing data. C error: Expected 9 fields in line 6, saw 10"):
        main(["hm", "--raw", str(raw), "--out", str(tmp_path / "out")])
    (raw / "transactions_train.csv").write_text("day,customer_id,article_id\n")
    with pytest.raises(ValueError, match=r"transactions_train.csv, line 1: no column t_dat; found"):
        main(["hm", "--raw", str(raw), "--out", str(tmp_path / "out")])
    with pytest.raises(FileNotFoundError, match=r"hm: the raw folder .*nowhere does not exist"):
        main(["hm", "--raw", str(tmp_path / "nowhere"), "--out", str(tmp_path / "out")])

"""The MicroLens recipe: header variants of the pairs file, title files, covers, subsets, errors.
(The shared filters, time order and image folder are tested on MicroLens files in test_prepare.py.)"""

import os

import pytest

from recbole_gen.data.prepare import main
from test_prepare import SUBSET, table, write_microlens

PAIRS = [("7", "101", 1662336000), ("8", "101", 1662336005), ("7", "102", 1662336001)]
EXPECTED = [["user_id:token", "item_id:token", "timestamp:float"], ["7", "101", "1662336000"], ["7", "102", "1662336001"],
            ["8", "101", "1662336005"]]


@pytest.mark.parametrize("header", ["user,item,timestamp", "userID,videoID,timestamp", "timestamp,item,user", None])
def test_pairs_headers(tmp_path, header):
    pairs = [(time, item, user) for user, item, time in PAIRS] if header == "timestamp,item,user" else PAIRS
    raw = write_microlens(tmp_path / "raw", pairs=pairs, titles=None, covers=("101", "102"), header=header)
    main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert table(tmp_path / "out" / SUBSET / f"{SUBSET}.inter") == EXPECTED


def test_titles_with_header_and_repeats(tmp_path, capsys):
    titles = ["item,title", '101,"Chili, duck and rice # food"', "102,Panda # zoo", "102,Panda again", "999,Unwatched"]
    raw = write_microlens(tmp_path / "raw", pairs=PAIRS, titles=titles, covers=("101", "102"))
    main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])
    assert table(tmp_path / "out" / SUBSET / f"{SUBSET}.item") == [["item_id:token", "title:token_seq"],
                                                                   ["101", "Chili, duck and rice # food"],
                                                                   ["102", "Panda # zoo"]]
    assert f"{raw / SUBSET}_title_en.csv: 1 repeated item lines (the first of each kept)" in capsys.readouterr().out


def test_covers_of_any_image_extension_are_linked(tmp_path):
    raw = write_microlens(tmp_path / "raw", pairs=PAIRS, titles=None, covers=("101",))
    (raw / f"{SUBSET}_covers" / "101.jpg").rename(raw / f"{SUBSET}_covers" / "101.PNG")
    (raw / f"{SUBSET}_covers" / "notes.txt").write_text("not an image")
    report = main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out"), "--keep_items_without_image"])
    assert os.listdir(tmp_path / "out" / SUBSET / "images") == ["101.PNG"]
    assert report.n_with_image == 1 and report.final.items == 2


def test_several_subsets_need_category(tmp_path):
    raw = write_microlens(tmp_path / "raw", pairs=PAIRS, titles=None, covers=("101", "102"))
    (raw / "MicroLens-50k_pairs.csv").write_text("user,item,timestamp\n1,2,3\n")
    with pytest.raises(ValueError, match=r"microlens: 2 categories in .*\(MicroLens-100k, MicroLens-50k\); pass --category"):
        main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])
    report = main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out"), "--category", SUBSET])
    assert report.final.interactions == 3


def test_missing_pairs_file(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"microlens: no file matching <Subset>_pairs.csv in"):
        main(["microlens", "--raw", str(tmp_path), "--out", str(tmp_path / "out")])


@pytest.mark.parametrize("bad_pair, message", [
    (("9", "103", "yesterday"), "line 5: timestamp must be a number, not 'yesterday'"),
    (("9", "", "5"), "line 5: empty user or item"),
])
def test_malformed_pairs_line_names_file_and_line(tmp_path, bad_pair, message):  # line 1 is the header
    raw = write_microlens(tmp_path / "raw", pairs=PAIRS + [bad_pair], titles=None, covers=("101",))
    with pytest.raises(ValueError, match=f"{raw / SUBSET}_pairs.csv, {message}"):
        main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])


def test_malformed_title_line(tmp_path):
    raw = write_microlens(tmp_path / "raw", pairs=PAIRS, titles=["101,Fine", "102 no comma"], covers=("101",))
    with pytest.raises(ValueError, match=r"_title_en.csv, line 2: expected 'item,title', got '102 no comma'"):
        main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])

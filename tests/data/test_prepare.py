"""prepare's shared steps on a tiny MicroLens-format source: the image filter and the k-core (hand-computed),
time order with ties, text sanitising, the image folder, the summary, errors; and RecBole loading the result."""

import os

import pytest
from PIL import Image
from recbole.data import create_dataset

from conftest import fast_config_dict
from recbole_gen.config import Config
from recbole_gen.data.prepare import main

SUBSET = "MicroLens-100k"
# Items 11, 12, 13 have covers and are watched by three users each or more; 14 (only u4) has a cover, 15 (only
# u5) has none. u1 watched 12 and 11 at the same second, 12 first in the file.
PAIRS = [("u1", "12", 100), ("u1", "11", 100), ("u2", "11", 90), ("u2", "12", 95), ("u3", "11", 97), ("u1", "13", 101),
         ("u2", "13", 102), ("u3", "12", 103), ("u4", "11", 104), ("u4", "14", 105), ("u5", "15", 50)]
TITLES = ['11,Cats, dogs and "friends"', '12,"Quoted, with a comma"', "13,tab\there  and   spaces", "14,Fourteen"]
# Time order (ties in file order) of what survives: the image filter drops 15 (u5's only item); the 2-core then
# drops 14 (one user), which leaves u4 with one interaction, so u4 goes too in a second round.
EXPECTED_INTER = [["user_id:token", "item_id:token", "timestamp:float"],
                  ["u2", "11", "90"], ["u2", "12", "95"], ["u3", "11", "97"], ["u1", "12", "100"], ["u1", "11", "100"],
                  ["u1", "13", "101"], ["u2", "13", "102"], ["u3", "12", "103"]]


def table(path):
    """A written tab-separated file as rows of fields, header first."""
    return [line.split("\t") for line in path.read_text(encoding="utf-8").splitlines()]


def save_image(path, colour=(200, 30, 30)):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 8), colour).save(path)


def write_microlens(raw, pairs=PAIRS, titles=TITLES, covers=("11", "12", "13", "14"), header="user,item,timestamp"):
    raw.mkdir(parents=True, exist_ok=True)
    lines = ([header] if header else []) + [f"{user},{item},{time}" for user, item, time in pairs]
    (raw / f"{SUBSET}_pairs.csv").write_text("\n".join(lines) + "\n")
    if titles is not None:
        (raw / f"{SUBSET}_title_en.csv").write_text("\n".join(titles) + "\n")
    for item in covers:
        save_image(raw / f"{SUBSET}_covers" / f"{item}.jpg")
    return raw


def test_filters_time_order_text_images_and_summary(tmp_path, capsys):
    raw, out = write_microlens(tmp_path / "raw"), tmp_path / "out"
    report = main(["microlens", "--raw", str(raw), "--out", str(out), "--k_core", "2"])
    folder = out / SUBSET
    assert table(folder / f"{SUBSET}.inter") == EXPECTED_INTER
    assert table(folder / f"{SUBSET}.item") == [["item_id:token", "title:token_seq"], ["11", "Cats, dogs and ''friends''"],
                                                ["12", "Quoted, with a comma"], ["13", "tab here and spaces"]]
    assert sorted(os.listdir(folder / "images")) == ["11.jpg", "12.jpg", "13.jpg"]
    source, copy = os.stat(raw / f"{SUBSET}_covers" / "11.jpg"), os.stat(folder / "images" / "11.jpg")
    assert (copy.st_ino, copy.st_dev) == (source.st_ino, source.st_dev)  # hard-linked on one file system
    assert not os.path.exists(folder / "image_urls.tsv")
    assert (report.final.users, report.final.items, report.final.interactions, report.n_with_image) == (3, 3, 8, 3)
    printed = capsys.readouterr().out.splitlines()
    assert printed[:5] == [
        f"{SUBSET}: 3 users, 3 items, 8 interactions; 3 of 3 items have an image file",
        "  read: 11 interactions, 5 users, 5 items",
        "  removed by items without an image file: 1 interactions, 1 users, 1 items",
        "  removed by 2-core: 2 interactions, 1 users, 1 items",
        "  items without metadata (no .item row): 0",
    ]
    assert printed[-1] == (f"  python run_recbole_gen.py --model=GenRec --data_path={out} --dataset={SUBSET} "
                           f"--load_col=None --image_dir={folder / 'images'}")
    assert not any("fetch_images" in line for line in printed)


def test_keep_items_without_image_and_dedup(tmp_path, capsys):
    pairs = PAIRS + [("u1", "12", 200)]  # u1 watches 12 again later
    raw, out = write_microlens(tmp_path / "raw", pairs=pairs, titles=None), tmp_path / "out"
    report = main(["microlens", "--raw", str(raw), "--out", str(out), "--keep_items_without_image", "--dedup"])
    rows = table(out / SUBSET / f"{SUBSET}.inter")
    assert len(rows) - 1 == 11 and ["u5", "15", "50"] == rows[1] and ["u1", "12", "200"] not in rows
    assert report.removed[0][0] == "repeated user-item pairs (the first kept)" and tuple(report.removed[0][1]) == (1, 0, 0)
    assert report.n_with_image == 4 and report.n_without_metadata == 5
    assert not os.path.exists(out / SUBSET / f"{SUBSET}.item")  # no title file: no item text to write
    printed = capsys.readouterr().out
    assert "4 of 5 items have an image file" in printed and "items without metadata (no .item row): 5" in printed
    assert f"note: no title file ({raw / SUBSET}_title_en.csv or {raw / SUBSET}_titles.csv): items have no text" in printed


def test_a_second_run_leaves_nothing_of_the_first(tmp_path):
    raw, out = write_microlens(tmp_path / "raw"), tmp_path / "out"
    main(["microlens", "--raw", str(raw), "--out", str(out)])
    assert sorted(os.listdir(out / SUBSET / "images")) == ["11.jpg", "12.jpg", "13.jpg", "14.jpg"]
    main(["microlens", "--raw", str(raw), "--out", str(out), "--k_core", "2"])
    assert sorted(os.listdir(out / SUBSET / "images")) == ["11.jpg", "12.jpg", "13.jpg"]
    assert sorted(os.listdir(out / SUBSET)) == sorted([f"{SUBSET}.inter", f"{SUBSET}.item", "images"])
    os.remove(raw / f"{SUBSET}_title_en.csv")  # RecBole must not read the first run's titles as this run's
    report = main(["microlens", "--raw", str(raw), "--out", str(out), "--k_core", "2"])
    assert sorted(os.listdir(out / SUBSET)) == sorted([f"{SUBSET}.inter", "images"])
    assert f"removed {out / SUBSET / SUBSET}.item, written by an earlier run (this run has none)" in report.notes


def test_name_option_names_the_folder_and_files(tmp_path):
    raw, out = write_microlens(tmp_path / "raw"), tmp_path / "out"
    main(["microlens", "--raw", str(raw), "--out", str(out), "--name", "ml100k"])
    assert sorted(os.listdir(out / "ml100k")) == ["images", "ml100k.inter", "ml100k.item"]


@pytest.mark.parametrize("extra, error, message", [
    (["--posters", "x"], ValueError, "microlens takes no --posters"),
    (["--min_rating", "4"], ValueError, "--min_rating needs ratings, and microlens has none"),
    (["--k_core", "4"], ValueError, "no interaction is left after the filters"),
    (["--fetch_images"], ValueError, "--fetch_images needs image URLs"),
])
def test_refused_options(tmp_path, extra, error, message):
    raw = write_microlens(tmp_path / "raw")
    with pytest.raises(error, match=message):
        main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out"), *extra])
    assert not os.path.exists(tmp_path / "out" / SUBSET / f"{SUBSET}.inter")


def test_k_core_below_one_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["microlens", "--raw", str(tmp_path), "--out", str(tmp_path / "out"), "--k_core", "0"])
    assert "--k_core: must be at least 1, not 0" in capsys.readouterr().err


def test_no_image_source_is_an_error_unless_kept(tmp_path):
    raw = write_microlens(tmp_path / "raw", covers=())
    with pytest.raises(FileNotFoundError, match=f"no cover folder .*{SUBSET}_covers.*--keep_items_without_image"):
        main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])
    report = main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out"), "--keep_items_without_image"])
    assert report.image_kind is None and report.final.interactions == 11
    assert not os.path.exists(tmp_path / "out" / SUBSET / "images")
    assert "--image_dir" not in report.commands[-1]
    assert report.summary().splitlines()[0].endswith(f"no item has an image (no cover folder {raw / SUBSET}_covers "
                                                     f"(unzip {SUBSET}_covers.zip into {raw}))")


def test_an_id_that_cannot_be_a_token_is_an_error(tmp_path):
    raw = write_microlens(tmp_path / "raw", pairs=PAIRS + [("u9", "a/b", 7)])
    with pytest.raises(ValueError, match="item_id 'a/b' cannot be a token"):
        main(["microlens", "--raw", str(raw), "--out", str(tmp_path / "out")])


def test_recbole_loads_the_prepared_dataset(tmp_path):
    raw, out = write_microlens(tmp_path / "raw"), tmp_path / "out"
    report = main(["microlens", "--raw", str(raw), "--out", str(out), "--k_core", "2"])
    # load_col None, as in the printed run command: every column of every file
    config_dict = {**fast_config_dict(tmp_path), "data_path": str(out), "load_col": None}
    config = Config(model="SASRec", dataset=SUBSET, config_dict=config_dict)
    dataset = create_dataset(config)
    assert (dataset.user_num - 1, dataset.item_num - 1, dataset.inter_num) == (3, 3, 8) == (
        report.final.users, report.final.items, report.final.interactions)
    assert dataset.item_feat["title"].shape[0] == dataset.item_num
    # u1's tie (12 then 11 at second 100) keeps file order: leave-one-out tests 13 after [12, 11]
    test = dataset.build()[2].inter_feat
    row = int((test["user_id"] == dataset.token2id("user_id", "u1")).nonzero()[0, 0])
    history = test["item_id_list"][row, : test["item_length"][row]].tolist()
    assert dataset.id2token("item_id", history).tolist() == ["12", "11"]
    assert dataset.id2token("item_id", [int(test["item_id"][row])]).tolist() == ["13"]

"""The MovieLens 1M recipe: the GroupLens .dat files (latin-1 titles, users) or RecBole's atomic files, joined
with a poster folder or a poster URL list; the rating and k-core filters (hand-computed); errors."""

import os

import pytest

from recbole_gen.data.prepare import main
from test_prepare import save_image, table

# user::movie::rating::timestamp
RATINGS = ["1::1::5::10", "1::2::4::11", "1::3::2::12", "2::1::4::13", "2::2::5::14", "3::1::5::15", "3::3::5::16",
           "4::2::3::17", "4::1::4::18"]
MOVIES = ["1::Toy Story (1995)::Animation|Children's|Comedy", "2::Café au lait (Métisse) (1993)::Comedy",
          "3::City of Lost Children, The (1995)::Adventure|Sci-Fi", "4::Untitled::Drama"]
USERS = ["1::F::1::10::48067", "2::M::56::16::70072", "3::M::25::15::55117", "4::M::45::7::02460"]


def write_dat(raw, ratings=RATINGS, movies=MOVIES, users=USERS):
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "ratings.dat").write_text("\n".join(ratings) + "\n", encoding="latin-1")
    if movies is not None:
        (raw / "movies.dat").write_text("\n".join(movies) + "\n", encoding="latin-1")
    if users is not None:
        (raw / "users.dat").write_text("\n".join(users) + "\n", encoding="latin-1")
    return raw


def write_posters(folder, names=("1.jpg", "2.png", "3.jpg")):
    for name in names:
        save_image(folder / name)
    return folder


def test_dat_files_with_posters_min_rating_and_k_core(tmp_path, capsys):
    raw, out = write_dat(tmp_path / "raw"), tmp_path / "out"
    posters = write_posters(tmp_path / "posters")
    report = main(["ml-1m", "--raw", str(raw), "--out", str(out), "--posters", str(posters), "--min_rating", "4",
                   "--k_core", "2"])
    folder = out / "ml-1m"
    # rating >= 4 drops (1, 3) and (4, 2); then u4 (one rating left) and movie 3 (u3 only) go, then u3 (movie 1 only)
    assert table(folder / "ml-1m.inter") == [["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
                                             ["1", "1", "5.0", "10"], ["1", "2", "4.0", "11"], ["2", "1", "4.0", "13"],
                                             ["2", "2", "5.0", "14"]]
    assert table(folder / "ml-1m.item") == [
        ["item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq"],
        ["1", "Toy Story", "1995", "Animation Children's Comedy"], ["2", "Café au lait (Métisse)", "1993", "Comedy"]]
    assert table(folder / "ml-1m.user") == [
        ["user_id:token", "age:token", "gender:token", "occupation:token", "zip_code:token"],
        ["1", "1", "F", "10", "48067"], ["2", "56", "M", "16", "70072"]]
    assert sorted(os.listdir(folder / "images")) == ["1.jpg", "2.png"]
    printed = capsys.readouterr().out.splitlines()
    assert printed[:5] == ["ml-1m: 2 users, 2 items, 4 interactions; 2 of 2 items have an image file",
                           "  read: 9 interactions, 4 users, 3 items",
                           "  removed by rating < 4: 2 interactions, 0 users, 0 items",
                           "  removed by items without an image file: 0 interactions, 0 users, 0 items",
                           "  removed by 2-core: 3 interactions, 2 users, 1 items"]
    assert report.commands == [f"python run_recbole_gen.py --model=GenRec --data_path={out} --dataset=ml-1m "
                               f"--load_col=None --image_dir={folder / 'images'}"]


def test_without_the_rating_filter_the_2_core_keeps_everything(tmp_path):
    raw, posters = write_dat(tmp_path / "raw"), write_posters(tmp_path / "posters")
    report = main(["ml-1m", "--raw", str(raw), "--out", str(tmp_path / "out"), "--posters", str(posters), "--k_core", "2"])
    assert [(label, tuple(counts)) for label, counts in report.removed] == [("items without an image file", (0, 0, 0)),
                                                                            ("2-core", (0, 0, 0))]
    assert report.final == (9, 4, 3)


def test_a_title_without_year_and_no_users_file(tmp_path):
    raw = write_dat(tmp_path / "raw", ratings=["1::4::3::5"], users=None)
    main(["ml-1m", "--raw", str(raw), "--out", str(tmp_path / "out"), "--keep_items_without_image"])
    assert table(tmp_path / "out" / "ml-1m" / "ml-1m.item")[1] == ["4", "Untitled", "", "Drama"]
    assert not os.path.exists(tmp_path / "out" / "ml-1m" / "ml-1m.user")


def write_atomic(raw, inter_rows):
    raw.mkdir(parents=True, exist_ok=True)
    (raw / "ml-1m.inter").write_text("user_id:token\titem_id:token\trating:float\ttimestamp:float\n"
                                     + "".join("\t".join(row) + "\n" for row in inter_rows))
    (raw / "ml-1m.item").write_text("item_id:token\tmovie_title:token_seq\trelease_year:token\tgenre:token_seq\n"
                                    "10\tHeat\t1995\tAction Crime Thriller\n20\tSabrina\t1995\tComedy Romance\n")
    return raw


def test_atomic_files_with_poster_urls(tmp_path):
    raw, out = tmp_path / "raw", tmp_path / "out"
    write_atomic(raw, [("1", "10", "5", "100"), ("2", "10", "3", "99"), ("2", "20", "4", "101")])
    urls = tmp_path / "posters.csv"
    urls.write_text("movie_id,url\n10,http://posters/10.jpg\n")
    report = main(["ml-1m", "--raw", str(raw), "--out", str(out), "--poster_urls", str(urls)])
    folder = out / "ml-1m"
    assert table(folder / "ml-1m.inter") == [["user_id:token", "item_id:token", "rating:float", "timestamp:float"],
                                             ["2", "10", "3.0", "99"], ["1", "10", "5.0", "100"]]
    assert table(folder / "ml-1m.item") == [
        ["item_id:token", "movie_title:token_seq", "release_year:token", "genre:token_seq"],
        ["10", "Heat", "1995", "Action Crime Thriller"]]
    assert table(folder / "image_urls.tsv") == [["item_id", "url"], ["10", "http://posters/10.jpg"]]
    assert tuple(report.removed[0][1]) == (1, 0, 1)
    assert report.commands[0] == (f"python -m recbole_gen.data.fetch_images --urls {folder / 'image_urls.tsv'} "
                                  f"--out {folder / 'images'}")


def test_atomic_rating_that_is_not_a_number(tmp_path):
    raw = write_atomic(tmp_path / "raw", [("1", "10", "5", "100"), ("2", "10", "good", "99")])
    with pytest.raises(ValueError, match=r"ml-1m.inter, line 3: rating must be a number, not 'good'"):
        main(["ml-1m", "--raw", str(raw), "--out", str(tmp_path / "out"), "--keep_items_without_image"])


def test_errors(tmp_path):
    out = str(tmp_path / "out")
    with pytest.raises(FileNotFoundError, match=r"ml-1m: neither ratings.dat .* nor ml-1m.inter"):
        main(["ml-1m", "--raw", str(tmp_path), "--out", out])
    raw = write_dat(tmp_path / "raw", ratings=["1::1::5::10", "1::2::4"])
    with pytest.raises(ValueError, match=r"ratings.dat, line 2: 3 '::'-separated fields, expected 4"):
        main(["ml-1m", "--raw", str(raw), "--out", out, "--keep_items_without_image"])
    raw = write_dat(tmp_path / "raw2", movies=None)
    with pytest.raises(FileNotFoundError, match=r"ratings.dat needs .*movies.dat"):
        main(["ml-1m", "--raw", str(raw), "--out", out, "--keep_items_without_image"])
    raw = write_dat(tmp_path / "raw3")
    with pytest.raises(FileNotFoundError, match=r"MovieLens ships no images: pass --posters DIR .*; or "
                                                r"pass --keep_items_without_image"):
        main(["ml-1m", "--raw", str(raw), "--out", out])
    with pytest.raises(ValueError, match="one of --posters and --poster_urls, not both"):
        main(["ml-1m", "--raw", str(raw), "--out", out, "--posters", str(tmp_path), "--poster_urls", str(tmp_path)])
    with pytest.raises(ValueError, match="amazon2023 takes no --posters"):
        main(["amazon2023", "--raw", str(raw), "--out", out, "--posters", str(tmp_path)])
    urls = tmp_path / "urls.csv"
    urls.write_text("1,http://a.jpg\n1,http://b.jpg\n")
    with pytest.raises(ValueError, match=r"urls.csv, line 2: movie 1 already has a URL \(line 1\)"):
        main(["ml-1m", "--raw", str(raw), "--out", out, "--poster_urls", str(urls)])

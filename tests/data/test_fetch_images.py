"""The image fetcher against a local HTTP server: good, corrupt, missing, flaky, slow and rate-limited answers."""

import email.utils
import io
import os
import random
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from recbole_gen.data import fetch_images as fetch_module
from recbole_gen.data.fetch_images import FetchReport, fetch_images, main

RED, BLUE = (255, 0, 0), (0, 0, 255)


def _encode(colour, image_format):
    buffer = io.BytesIO()
    Image.new("RGB", (8, 8), colour).save(buffer, image_format)
    return buffer.getvalue()


PNG, JPEG, GIF = _encode(RED, "PNG"), _encode(BLUE, "JPEG"), _encode(RED, "GIF")
NOISE = Image.frombytes("RGB", (24, 24), random.Random(0).randbytes(24 * 24 * 3))
_buffer = io.BytesIO()
NOISE.save(_buffer, "JPEG", quality=50)
CUT_JPEG = _buffer.getvalue()[:-200]  # headers intact, scan data cut: passes Pillow's verify(), fails load()
MAX_BYTES = 2000  # every good image above is far smaller; /huge and /stream are larger


def _answer(path, hit):
    """(status, headers, body, seconds to wait first) for the ``hit``-th request (1-based) of ``path``."""
    good = {"/a.png": PNG, "/b.jpg": JPEG, "/c.gif": GIF}
    if path in good:
        return 200, {"Content-Length": str(len(good[path]))}, good[path], 0
    return {
        "/corrupt": (200, {}, b"<html>not an image</html>", 0),
        "/truncated": (200, {}, PNG[: len(PNG) // 2], 0),
        "/cut_jpeg": (200, {}, CUT_JPEG, 0),
        "/missing": (404, {}, b"", 0),
        "/gone": (410, {}, b"", 0),
        "/forbidden": (403, {}, b"", 0),
        "/flaky": (503, {}, b"", 0) if hit == 1 else (200, {}, PNG, 0),
        "/down": (503, {}, b"", 0),
        "/busy": (429, {"Retry-After": "1"}, b"", 0) if hit == 1 else (200, {}, PNG, 0),
        "/slow": (200, {}, PNG, 1.0),
        "/huge": (200, {"Content-Length": str(MAX_BYTES + 1)}, bytes(MAX_BYTES + 1), 0),
        "/stream": (200, {}, bytes(3 * MAX_BYTES), 0),  # no Content-Length: the cap applies while reading
        "/redirect": (302, {"Location": "/a.png"}, b"", 0),
        "/to_file": (302, {"Location": "file:///etc/passwd"}, b"", 0),
    }[path]


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        with server.lock:
            server.hits.setdefault(self.path, []).append(time.monotonic())
            server.user_agents.add(self.headers["User-Agent"])
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
            hit = len(server.hits[self.path])
        try:
            status, headers, body, wait = _answer(self.path, hit)
            time.sleep(server.delay + wait)
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) or stopped reading (too large)
        finally:
            with server.lock:
                server.in_flight -= 1

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock, self.hits, self.user_agents = threading.Lock(), {}, set()
        self.in_flight = self.max_in_flight = 0
        self.delay = 0.0

    def url(self, path):
        return f"http://127.0.0.1:{self.server_address[1]}{path}"

    def handle_error(self, request, client_address):
        pass  # a client that hung up mid-answer is part of the test


@pytest.fixture
def server():
    server = _Server()
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _fetch(urls, out, **overrides):
    settings = dict(workers=4, per_host=4, retries=2, backoff=0.01, timeout=0.3, show_progress=False,
                    max_bytes=MAX_BYTES)
    settings.update(overrides)
    return fetch_images(urls, out, **settings)


GOOD = ["a", "b", "c", "flaky", "busy", "redirect"]


def _all_urls(server):
    names = ["corrupt", "truncated", "cut_jpeg", "missing", "gone", "forbidden", "flaky", "down", "busy", "slow",
             "huge", "stream", "redirect", "to_file"]
    urls = {name: server.url(f"/{name}") for name in names}
    urls.update(a=server.url("/a.png"), b=server.url("/b.jpg"), c=server.url("/c.gif"),
                refused=f"http://127.0.0.1:{_closed_port()}/x.png", ftp="ftp://example.org/x.png", blank="",
                no_host="http:///x.png")
    return urls


def test_every_outcome_is_counted_by_reason_and_good_images_are_saved(server, tmp_path):
    out = tmp_path / "images"
    report = _fetch(_all_urls(server), out)
    assert report.fetched == ["flaky", "busy", "redirect", "a", "b", "c"]  # input order
    assert report.skipped == []
    assert report.failed == {
        "corrupt": ["corrupt", "truncated", "cut_jpeg"], "http_404": ["missing"], "http_410": ["gone"],
        "http_403": ["forbidden"], "http_5xx": ["down"], "timeout": ["slow"], "too_large": ["huge", "stream"],
        "http_302": ["to_file"], "connection": ["refused"], "invalid_url": ["ftp", "blank", "no_host"],
    }
    files = sorted(os.listdir(out))
    assert files == ["a.png", "b.jpg", "busy.png", "c.png", "fetch_report.json", "flaky.png", "redirect.png"]
    for name in ["a.png", "busy.png", "c.png", "flaky.png", "redirect.png"]:
        with Image.open(out / name) as image:
            assert image.format == "PNG" and image.convert("RGB").getpixel((4, 4)) == RED
    with Image.open(out / "b.jpg") as image:
        assert image.format == "JPEG" and image.getpixel((4, 4))[2] > 200
    # Retries only where they can help: 503 and 429 once then fine, a timeout, a server that stays down.
    hits = {path: len(times) for path, times in server.hits.items()}
    assert hits["/flaky"] == 2 and hits["/busy"] == 2 and hits["/down"] == 3 and hits["/slow"] == 3
    assert hits["/missing"] == hits["/gone"] == hits["/forbidden"] == hits["/corrupt"] == 1
    busy = server.hits["/busy"]
    assert busy[1] - busy[0] >= 0.9  # Retry-After: 1 honoured although backoff is 0.01 s
    assert all(agent.startswith("recbole-gen/") for agent in server.user_agents)
    assert FetchReport.load(out / "fetch_report.json") == report
    summary = report.summary()
    assert "21 item images: 6 fetched, 0 skipped (already on disk), 15 failed" in summary
    assert "  invalid_url: 3 (ftp, blank, no_host)" in summary


def test_a_second_run_fetches_only_what_is_missing(server, tmp_path):
    out = tmp_path / "images"
    urls = _all_urls(server)
    first = _fetch(urls, out)
    good_paths = ["/a.png", "/b.jpg", "/c.gif", "/flaky", "/busy", "/redirect"]
    hits_before = {path: len(server.hits[path]) for path in good_paths}
    second = _fetch(urls, out)
    assert second.fetched == [] and sorted(second.skipped) == sorted(GOOD)
    assert second.failed == first.failed  # failures are tried again, and fail again
    assert {path: len(server.hits[path]) for path in good_paths} == hits_before
    assert FetchReport.load(out / "fetch_report.json") == second


def test_a_truncated_or_corrupt_file_on_disk_is_fetched_again(server, tmp_path):
    out = tmp_path / "images"
    out.mkdir()
    (out / "a.png").write_bytes(PNG[: len(PNG) // 2])  # an interrupted download
    (out / "b.png").write_bytes(b"garbage")  # b now comes as JPEG: the stale .png must go
    (out / "c.png").write_bytes(PNG)  # already fine
    urls = {"a": server.url("/a.png"), "b": server.url("/b.jpg"), "c": server.url("/c.gif")}
    report = _fetch(urls, out)
    assert report.fetched == ["a", "b"] and report.skipped == ["c"] and report.failed == {}
    assert "/c.gif" not in server.hits
    assert sorted(os.listdir(out)) == ["a.png", "b.jpg", "c.png", "fetch_report.json"]
    with Image.open(out / "a.png") as image:
        image.load()


@pytest.mark.parametrize("per_host", [1, 3])
def test_requests_in_flight_per_host_are_limited(server, tmp_path, per_host):
    server.delay = 0.1  # long enough for requests to overlap when allowed
    urls = {f"i{i}": server.url("/a.png") for i in range(6)}
    report = _fetch(urls, tmp_path / "images", workers=4, per_host=per_host)
    assert len(report.fetched) == 6
    assert server.max_in_flight == per_host


def test_item_tokens_that_cannot_be_file_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match=r"'a/b'.*'\.\.'"):
        fetch_images({"a/b": "http://x/1.png", "..": "http://x/2.png", "ok": "http://x/3.png"}, tmp_path)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("setting", [{"workers": 0}, {"per_host": 0}, {"retries": -1}, {"timeout": 0}])
def test_bad_settings_name_the_argument(tmp_path, setting):
    with pytest.raises(ValueError, match=next(iter(setting))):
        fetch_images({}, tmp_path, **setting)


def test_retry_after_is_read_as_seconds_or_a_date_and_capped():
    assert fetch_module._retry_after("3") == 3.0
    assert 3.0 < fetch_module._retry_after(email.utils.formatdate(time.time() + 5, usegmt=True)) <= 5.0
    assert fetch_module._retry_after("86400") == fetch_module.MAX_RETRY_AFTER
    assert fetch_module._retry_after("soon") is None and fetch_module._retry_after(None) is None


def test_command_line_reads_a_tsv_and_prints_the_summary(server, tmp_path, capsys):
    urls = tmp_path / "urls.tsv"
    urls.write_text(f"item_id\turl\na\t{server.url('/a.png')}\nm\t{server.url('/missing')}\n")
    main(["--urls", str(urls), "--out", str(tmp_path / "images"), "--workers", "2", "--retries", "0"])
    printed = capsys.readouterr().out
    assert "2 item images: 1 fetched, 0 skipped (already on disk), 1 failed" in printed
    assert "http_404: 1 (m)" in printed
    assert sorted(os.listdir(tmp_path / "images")) == ["a.png", "fetch_report.json"]


@pytest.mark.parametrize("lines, pattern", [
    ("item_id\turl\na\thttp://x/a.png\nb http://x/b.png\n", r"urls\.tsv:3: expected 'item_id<TAB>url'"),
    ("a\thttp://x/a.png\nb\t\n", r"urls\.tsv:2: expected"),
    ("a\thttp://x/a.png\nb\thttp://x/b.png\na\thttp://x/c.png\n", r"urls\.tsv:3: item 'a' already has a URL on line 1"),
])
def test_command_line_names_the_file_and_line_of_a_malformed_line(tmp_path, capsys, lines, pattern):
    urls = tmp_path / "urls.tsv"
    urls.write_text(lines)
    with pytest.raises(SystemExit):
        main(["--urls", str(urls), "--out", str(tmp_path / "images")])
    assert re.search(pattern, capsys.readouterr().err)
    assert not (tmp_path / "images").exists()

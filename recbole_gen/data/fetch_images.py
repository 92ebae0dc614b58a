"""Download item images from URLs into a folder that the ``image_dir`` config key reads.

Some dataset recipes list each item's image as a URL. :func:`fetch_images` saves the image of item token
``t`` as ``<out_dir>/t.jpg`` (or ``.png`` / ``.webp``, after the decoded format), the layout
:class:`~recbole_gen.data.item_content.ItemContent` matches by token. It is polite (a limit on requests in
flight per host, back-off on 429/5xx, a User-Agent naming us), resumable (an image already on disk that
decodes is skipped; files are written atomically) and counts every failure by reason in a
:class:`FetchReport`, saved as ``<out_dir>/fetch_report.json``.

Command line::

    python -m recbole_gen.data.fetch_images --urls urls.tsv --out images/ [--workers 8] [--per_host 2]
"""

import argparse
import dataclasses
import email.utils
import http.client
import io
import itertools
import json
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from typing import Mapping

from PIL import Image
from tqdm import tqdm

from recbole_gen import __version__
from recbole_gen.data.item_content import DECODE_ERRORS, IMAGE_EXTENSIONS
from recbole_gen.fitting import atomic_file

logger = logging.getLogger(__name__)

USER_AGENT = f"recbole-gen/{__version__} (dataset image fetcher; Python urllib)"
REPORT_FILE = "fetch_report.json"
# Formats saved as downloaded; any other image Pillow reads (GIF, BMP, TIFF, ...) is re-encoded as PNG.
FORMAT_EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp"}
# A server asking to wait longer than this (seconds) is asked again after this long.
MAX_RETRY_AFTER = 60.0
FETCHED, SKIPPED = "fetched", "skipped"
# Pillow's verify() reports some broken files (e.g. a bad PNG chunk) as SyntaxError.
_BROKEN_IMAGE = DECODE_ERRORS + (SyntaxError,)


@dataclasses.dataclass
class FetchReport:
    """What one :func:`fetch_images` run did: item tokens fetched, skipped (already on disk) and failed
    (reason -> tokens, e.g. ``"http_404"``, ``"timeout"``, ``"corrupt"``), each in the order of the input."""

    fetched: list = dataclasses.field(default_factory=list)
    skipped: list = dataclasses.field(default_factory=list)
    failed: dict = dataclasses.field(default_factory=dict)

    @property
    def n_failed(self):
        return sum(len(tokens) for tokens in self.failed.values())

    def summary(self):
        total = len(self.fetched) + len(self.skipped) + self.n_failed
        lines = [f"{total} item images: {len(self.fetched)} fetched, {len(self.skipped)} skipped (already on disk), "
                 f"{self.n_failed} failed"]
        for reason, tokens in sorted(self.failed.items(), key=lambda entry: -len(entry[1])):
            more = f", ... ({len(tokens) - 5} more)" if len(tokens) > 5 else ""
            lines.append(f"  {reason}: {len(tokens)} ({', '.join(tokens[:5])}{more})")
        return "\n".join(lines)

    def save(self, path):
        with atomic_file(path) as staging, open(staging, "w", encoding="utf-8") as f:
            json.dump(dataclasses.asdict(self), f, indent=1)

    @classmethod
    def load(cls, path):
        with open(path, encoding="utf-8") as f:
            return cls(**json.load(f))


class _Failure(Exception):
    def __init__(self, reason, retry=False, retry_after=None):
        super().__init__(reason)
        self.reason, self.retry, self.retry_after = reason, retry, retry_after


class _HTTPOnlyRedirects(urllib.request.HTTPRedirectHandler):
    """Follow redirects to http(s) URLs only (urllib's own handler also follows one to ftp)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if urllib.parse.urlsplit(newurl).scheme not in ("http", "https"):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} not followed", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def _image_format(data):
    """The Pillow format of an image body; raises ``_Failure`` unless it decodes completely."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            # Pillow only warns between its limit and twice that; item_content refuses those too.
            if Image.MAX_IMAGE_PIXELS and image.width * image.height > Image.MAX_IMAGE_PIXELS:
                raise _Failure("too_large")
            image.verify()  # checks structure and checksums without decoding
        with Image.open(io.BytesIO(data)) as image:
            image.load()  # verify() misses a body truncated mid-pixels
            return image.format
    except Image.DecompressionBombError:
        raise _Failure("too_large") from None
    except _BROKEN_IMAGE:
        raise _Failure("corrupt") from None


def _decodes(path):
    try:
        with open(path, "rb") as f:
            _image_format(f.read())
        return True
    except _Failure:
        return False


def _retry_after(value):
    """Seconds from a Retry-After header (delta-seconds or an HTTP date), capped; None if unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


class _Fetcher:
    """Fetches one item's image: skip if on disk, download with retries under the host's limit, validate, save."""

    def __init__(self, out_dir, per_host, retries, backoff, timeout, max_bytes):
        self.out_dir, self.per_host, self.retries, self.backoff = out_dir, per_host, retries, backoff
        self.timeout, self.max_bytes = timeout, max_bytes
        self.opener = urllib.request.build_opener(_HTTPOnlyRedirects)
        self.host_slots, self.lock = {}, threading.Lock()
        self.on_disk = {}  # token -> image files already in out_dir (any extension)
        for name in sorted(os.listdir(out_dir)):
            stem, extension = os.path.splitext(name)
            if extension.lower() in IMAGE_EXTENSIONS:
                self.on_disk.setdefault(stem, []).append(os.path.join(out_dir, name))

    def __call__(self, token, url):
        """``"fetched"``, ``"skipped"`` or the failure reason."""
        existing = self.on_disk.get(token, [])
        if any(_decodes(path) for path in existing):
            return SKIPPED
        try:
            host = self._host(url)
            data = self._download(url, host)
            image_format = _image_format(data)
        except _Failure as failure:
            return failure.reason
        if image_format not in FORMAT_EXTENSIONS:
            with Image.open(io.BytesIO(data)) as image, io.BytesIO() as png:
                image.convert("RGB").save(png, "PNG")
                data, image_format = png.getvalue(), "PNG"
        path = os.path.join(self.out_dir, token + FORMAT_EXTENSIONS[image_format])
        with atomic_file(path) as staging, open(staging, "wb") as f:
            f.write(data)
        for stale in existing:  # a truncated or corrupt earlier file, maybe under another extension
            if stale != path:
                os.remove(stale)
        return FETCHED

    @staticmethod
    def _host(url):
        try:
            parts = urllib.parse.urlsplit(url)
            host = parts.hostname
        except ValueError:
            raise _Failure("invalid_url") from None
        if parts.scheme not in ("http", "https") or not host:
            raise _Failure("invalid_url")
        return host

    def _slot(self, host):
        with self.lock:
            return self.host_slots.setdefault(host, threading.BoundedSemaphore(self.per_host))

    def _download(self, url, host):
        for attempt in itertools.count():
            try:
                with self._slot(host):  # held for the request only, not while backing off
                    return self._get(url)
            except _Failure as failure:
                if not failure.retry or attempt >= self.retries:
                    raise
                delay = self.backoff * 2**attempt * (1 + 0.25 * random.random())
                time.sleep(max(delay, failure.retry_after or 0.0))

    def _get(self, url):
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
        try:
            with self.opener.open(request, timeout=self.timeout) as response:
                length = response.headers.get("Content-Length", "")
                if length.isdigit() and int(length) > self.max_bytes:
                    raise _Failure("too_large")
                data = response.read(self.max_bytes + 1)
        except urllib.error.HTTPError as error:
            error.close()
            code = error.code
            if code == 429 or code >= 500:
                raise _Failure("http_429" if code == 429 else "http_5xx", retry=True,
                               retry_after=_retry_after(error.headers.get("Retry-After"))) from None
            raise _Failure(f"http_{code}") from None
        except urllib.error.URLError as error:
            if isinstance(error.reason, TimeoutError):
                raise _Failure("timeout", retry=True) from None
            raise _Failure("connection", retry=True) from None
        except TimeoutError:
            raise _Failure("timeout", retry=True) from None
        except (http.client.HTTPException, OSError):  # reset, refused, incomplete body, TLS errors
            raise _Failure("connection", retry=True) from None
        except ValueError:  # http.client rejects URLs with control characters or non-ASCII
            raise _Failure("invalid_url") from None
        if len(data) > self.max_bytes:
            raise _Failure("too_large")
        return data


def _check_tokens(tokens):
    """Each token names a file ``<token><ext>``; refuse those that would not read back as the same token."""
    bad = [token for token in tokens if not isinstance(token, str) or not token or "/" in token or os.sep in token
           or "\0" in token or os.path.splitext(token + ".jpg")[0] != token]
    if bad:
        raise ValueError(f"{len(bad)} item tokens cannot be image file names (a token must be non-empty, not "
                         f"only dots, and hold no '/' or NUL): {', '.join(map(repr, bad[:5]))}")


def _completed(pool, function, items, limit):
    """Yield ``(item, function(*item))`` as they finish, with at most ``limit`` submitted at a time."""
    items = iter(items)
    pending = {pool.submit(function, *item): item for item in itertools.islice(items, limit)}
    while pending:
        done, _ = wait(pending, return_when=FIRST_COMPLETED)
        for future in done:
            yield pending.pop(future), future.result()
        for item in itertools.islice(items, len(done)):
            pending[pool.submit(function, *item)] = item


def fetch_images(urls: Mapping[str, str], out_dir, *, workers=8, per_host=2, retries=3, backoff=0.5, timeout=10.0,
                 show_progress=True, max_bytes=20_000_000) -> FetchReport:
    """Download ``urls`` (item token -> image URL) into ``out_dir`` as ``<token>.jpg|.png|.webp``.

    Args:
        urls: item token -> http(s) URL of its image.
        out_dir: the folder to fill (created if missing); point the ``image_dir`` config key at it.
        workers: download threads.
        per_host: at most this many requests in flight to one host at a time.
        retries: further tries after a connection error, a timeout, HTTP 429 or 5xx (never after 403/404/410).
        backoff: seconds before the first retry, doubled for each next one (plus up to 25% jitter); a
            Retry-After header asking for longer is honoured up to ``MAX_RETRY_AFTER`` seconds.
        timeout: seconds to wait for the connection and for each read of the answer.
        show_progress: show a tqdm bar with fetched / skipped / failed counts.
        max_bytes: a larger body fails as ``"too_large"``.

    Returns:
        A :class:`FetchReport`, also saved as ``out_dir/fetch_report.json``. A failed download never stops
        the run; an image already in ``out_dir`` that decodes is skipped, so a rerun fetches only what is missing.
    """
    for name, value in (("workers", workers), ("per_host", per_host), ("max_bytes", max_bytes)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"fetch_images: {name} must be a positive integer, got {value!r}")
    if not isinstance(retries, int) or retries < 0:
        raise ValueError(f"fetch_images: retries must be a non-negative integer, got {retries!r}")
    if not timeout > 0 or not backoff >= 0:
        raise ValueError(f"fetch_images: timeout must be > 0 and backoff >= 0 seconds, got {timeout!r} and {backoff!r}")
    _check_tokens(urls)
    os.makedirs(out_dir, exist_ok=True)
    fetcher = _Fetcher(out_dir, per_host, retries, backoff, timeout, max_bytes)
    outcomes = {}
    counts = {FETCHED: 0, SKIPPED: 0, "failed": 0}
    with ThreadPoolExecutor(workers, thread_name_prefix="fetch_images") as pool, \
            tqdm(total=len(urls), desc="Fetch item images", ncols=100, disable=not show_progress) as progress:
        try:
            for (token, _), outcome in _completed(pool, fetcher, urls.items(), 4 * workers):
                outcomes[token] = outcome
                counts[outcome if outcome in (FETCHED, SKIPPED) else "failed"] += 1
                progress.update()
                progress.set_postfix(counts, refresh=False)
        except BaseException:
            pool.shutdown(cancel_futures=True)  # on Ctrl-C, finish the downloads in flight, start no more
            raise
    report = FetchReport()
    for token in urls:
        outcome = outcomes[token]
        if outcome == FETCHED:
            report.fetched.append(token)
        elif outcome == SKIPPED:
            report.skipped.append(token)
        else:
            report.failed.setdefault(outcome, []).append(token)
    report.save(os.path.join(out_dir, REPORT_FILE))
    logger.info(report.summary())
    return report


def read_url_file(path):
    """``item_id<TAB>url`` lines (an ``item_id<TAB>url`` header is optional) -> {item token: url}."""
    urls, first_line = {}, {}
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.rstrip("\r\n")
            if not line.strip() or (number == 1 and line.strip().split("\t") == ["item_id", "url"]):
                continue
            fields = line.split("\t")
            if len(fields) != 2 or not fields[0].strip() or not fields[1].strip():
                raise ValueError(f"{path}:{number}: expected 'item_id<TAB>url' (two non-empty tab-separated "
                                 f"fields), got {line[:200]!r}")
            token, url = fields[0].strip(), fields[1].strip()
            if token in urls:
                raise ValueError(f"{path}:{number}: item {token!r} already has a URL on line {first_line[token]}")
            urls[token], first_line[token] = url, number
    return urls


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m recbole_gen.data.fetch_images",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--urls", required=True, help="a TSV file of 'item_id<TAB>url' lines (header optional)")
    parser.add_argument("--out", required=True, help="the image folder to fill (the image_dir config key)")
    parser.add_argument("--workers", type=int, default=8, help="download threads")
    parser.add_argument("--per_host", type=int, default=2, help="requests in flight to one host at most")
    parser.add_argument("--retries", type=int, default=3, help="retries after timeouts, connection errors, 429, 5xx")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for a connection or a read")
    args = parser.parse_args(argv)
    try:
        urls = read_url_file(args.urls)
    except (OSError, ValueError) as error:
        parser.error(str(error))
    try:
        report = fetch_images(urls, args.out, workers=args.workers, per_host=args.per_host, retries=args.retries,
                              timeout=args.timeout)
    except ValueError as error:  # a bad setting or an item token that cannot be a file name
        parser.error(str(error))
    print(report.summary())
    print(f"Report: {os.path.join(args.out, REPORT_FILE)}")


if __name__ == "__main__":
    main()

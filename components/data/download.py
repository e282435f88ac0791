"""Data from an http(s) URL: downloaded once into a cache, checksummed, retried
on transient failures; credentials in the URL sent as Basic auth and never shown.

The cache is `RNNFLOW_CACHE_DIR` or `~/.cache/rnnflow`; a file dropped there
under `cache_path(url)` is used as if downloaded (how an offline machine runs a
URL experiment). Small public series the tour uses ship in `shipped/` and are
found by their `data.sha256`, so the tour runs with no network at all.
"""

import base64
import hashlib
import os
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from components.common.errors import DataError
from components.common.redact import redact_url

# Public series shipped with rnnflow, by the sha256 of their bytes: a URL
# whose `data.sha256` is one of these is read from here, never downloaded.
SHIPPED = {
    # Box & Jenkins Series J (gas furnace), the course's data.
    "0c1283e76c15deac83939c02e6b184825aad8d701cd7c932b19cb3820d1f6382": (
        "gas_furnace.csv"
    ),
}


def cache_dir() -> Path:
    """Download cache: `RNNFLOW_CACHE_DIR`, else `~/.cache/rnnflow`."""
    configured = os.environ.get("RNNFLOW_CACHE_DIR")
    return Path(configured) if configured else Path.home() / ".cache" / "rnnflow"


def cache_path(url: str) -> Path:
    """Where `url` is cached: a hash of the URL plus its file name, for humans."""
    parts = urllib.parse.urlsplit(url)
    name = Path(parts.path).name or "data"
    key = hashlib.sha256(url.encode()).hexdigest()[:16]
    return cache_dir() / f"{key}-{name}"


def fetch_url(url: str, sha256: str | None = None) -> Path:
    """Download `url` once into the cache and check it against `sha256`.

    A cached copy whose checksum differs from `sha256` is an error, not a silent
    re-download: the data changed and the user should know. A `sha256` of a
    series rnnflow ships (`SHIPPED`) is served from that copy.
    """
    if sha256 in SHIPPED:
        return Path(__file__).with_name("shipped") / SHIPPED[sha256]
    target = cache_path(url)
    shown = redact_url(url)
    if not target.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        payload = _download(url, shown, target)
        if payload.lstrip()[:15].lower().startswith((b"<!doctype html", b"<html")):
            raise DataError(
                f"{shown} returned an HTML page, not data: check the URL points at "
                "the raw file (for GitHub, the raw.githubusercontent.com address)."
            )
        tmp = target.with_suffix(target.suffix + ".part")
        tmp.write_bytes(payload)
        tmp.replace(target)
    if sha256 is not None:
        actual = file_sha256(target)
        if actual != sha256:
            raise DataError(
                f"{shown}: sha256 mismatch for the copy at {target}: expected "
                f"`data.sha256` {sha256}, got {actual}. Delete the file to "
                "download it again, or update `data.sha256`."
            )
    return target


# Answers that say "try again": rate limits and a busy or restarting server.
_TRANSIENT_STATUS = {408, 425, 429, 500, 502, 503, 504}


RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0)  # seconds before each retry; module-level for tests


def _download(url: str, shown: str, target: Path) -> bytes:
    """GET with retries and exponential backoff on transient failures (the
    statuses above, timeouts, refused or reset connections); any other HTTP
    error (404, 401, ...) and an unknown host fail at once, saying where a
    copy fetched by other means goes (`target`, the cache path)."""
    for attempt in range(len(RETRY_DELAYS) + 1):
        try:
            with urllib.request.urlopen(_request(url), timeout=30) as response:
                return response.read()
        except urllib.error.HTTPError as exc:
            if exc.code not in _TRANSIENT_STATUS or attempt == len(RETRY_DELAYS):
                tries = f" after {attempt + 1} tries" if attempt else ""
                raise DataError(
                    f"Cannot download {shown}: HTTP {exc.code} {exc.reason}{tries}."
                    + _elsewhere(target)
                ) from None
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            unknown_host = isinstance(getattr(exc, "reason", exc), socket.gaierror)
            if unknown_host or attempt == len(RETRY_DELAYS):
                reason = getattr(exc, "reason", exc)
                tries = f" (after {attempt + 1} tries)" if attempt else ""
                raise DataError(
                    f"Cannot download {shown}: {reason}{tries}." + _elsewhere(target)
                ) from None
        time.sleep(RETRY_DELAYS[attempt])
    raise AssertionError("unreachable")


def _elsewhere(target: Path) -> str:
    """What to do without the network: where a copy of the file goes, or
    the override that reads a local file instead."""
    return (
        f" Without network access, save the file as {target} (it is then used "
        "as if downloaded), or point the experiment at a local copy with "
        "`data.path=/path/to/file`."
    )


def _request(url: str) -> urllib.request.Request:
    """urllib does not read `user:password@` from a URL: send it as Basic auth."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None:
        return urllib.request.Request(url)
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    bare = urllib.parse.urlunsplit(parts._replace(netloc=host))
    token = f"{urllib.parse.unquote(parts.username)}:"
    token += urllib.parse.unquote(parts.password or "")
    encoded = base64.b64encode(token.encode()).decode()
    return urllib.request.Request(bare, headers={"Authorization": f"Basic {encoded}"})


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()

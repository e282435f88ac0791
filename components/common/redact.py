"""Keep secrets out of logs, params, tags and artifacts.

A URL may carry `user:password@` or a `?token=...`; anything shown to a person or
stored in MLflow goes through `redact_url` first.
"""

import urllib.parse

URL_SCHEMES = ("http", "https")


def redact_url(path: str) -> str:
    """Drop user:password and query strings from an http(s) URL; other text as is.

    Example: `https://u:p@host/d.csv?token=x` -> `https://host/d.csv?<redacted>`.
    """
    parts = urllib.parse.urlsplit(path)
    if parts.scheme not in URL_SCHEMES:
        return path
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    query = "<redacted>" if parts.query else ""
    return urllib.parse.urlunsplit((parts.scheme, host, parts.path, query, ""))

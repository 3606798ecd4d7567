"""Alert delivery: a JSON POST to a webhook, with a timeout and a few retries.

Written on the standard library's HTTP client, as `nospy.ledger.interface.HttpSource` is: one POST
needs no connection pool, and the monitor must not depend on a dev-only HTTP library. A webhook that
is down or slow never stops the monitor: `post` returns the error text, and the alert stays in the
database's outbox to be sent again next round.
"""

from __future__ import annotations

import http.client
import time
import urllib.error
import urllib.request
from collections.abc import Callable

from nospy import __version__
from nospy.errors import InputError

__all__ = ["check_url", "post"]

MAX_ANSWER = 1 << 16


def check_url(url: str) -> str:
    """``url`` if it is an http(s) URL; `InputError` otherwise."""
    if not url.startswith(("http://", "https://")) or len(url) > 4096:
        raise InputError(f"--webhook {url[:200]!r}: not an http(s) URL")
    return url


def post(
    url: str,
    body: bytes,
    *,
    timeout: float = 10.0,
    attempts: int = 3,
    backoff: float = 1.0,
    sleep: Callable[[float], None] = time.sleep,
) -> str | None:
    """POST ``body`` (JSON) to ``url``; None once a 2xx answer came, else the last error's text.

    A 4xx answer other than 408/429 is not retried: the receiver understood and refused it.
    """
    last = "not sent"
    for attempt in range(attempts):
        if attempt:
            sleep(backoff * (2 ** (attempt - 1)))
        req = urllib.request.Request(  # noqa: S310 - scheme checked by check_url
            check_url(url),
            data=body,
            method="POST",
            headers={"Content-Type": "application/json", "User-Agent": f"nospy/{__version__} monitor"},
        )
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked
                resp.read(MAX_ANSWER)
                return None
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
            if 400 <= exc.code < 500 and exc.code not in (408, 429):
                return last
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
            last = str(getattr(exc, "reason", None) or exc)
    return last

"""Container health check: exit 0 if an HTTP URL answers 2xx, else 1 (Docker HEALTHCHECK, Compose).

``python /opt/eventlake/healthcheck.py [URL]``; without an argument the URL comes from
``$HEALTHCHECK_URL``. Standard library only, so it runs in every eventlake image.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.parse
import urllib.request


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else os.environ.get("HEALTHCHECK_URL", "")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or parts.hostname not in {"127.0.0.1", "localhost"}:
        sys.stderr.write(f"healthcheck: refusing {url!r}: only this container's own loopback URLs\n")
        return 1
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback http only, checked above
            return 0 if 200 <= resp.status < 300 else 1
    except (urllib.error.URLError, OSError) as err:
        sys.stderr.write(f"healthcheck: {url}: {err}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))

"""The lake root's URI and the S3 credentials to reach it (from settings; no running stack needed)."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from eventlake.config import Settings
from eventlake.errors import ConfigError

# moto accepts any key; these only satisfy the SDKs' signing step. The local MinIO's root
# credentials are EVENTLAKE_S3_ACCESS_KEY_ID / EVENTLAKE_S3_SECRET_ACCESS_KEY when set, else a pair
# generated on its first start into <home>/minio/credentials (0600). Credentials of an external S3
# come from the same two settings (or AWS_*).
LOCAL_DUMMY_KEY = "eventlake-local"


def local_credentials_file(settings: Settings) -> Path:
    """Where the local MinIO's generated root credentials live (JSON, mode 0600)."""
    return settings.home / "minio" / "credentials"


def read_local_credentials(settings: Settings) -> tuple[str, str] | None:
    """The generated local pair, or None if the local MinIO never started in this home."""
    try:
        data = json.loads(local_credentials_file(settings).read_text())
        return str(data["access_key_id"]), str(data["secret_access_key"])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as err:
        path = local_credentials_file(settings)
        raise ConfigError(
            f"{path} is unreadable: {type(err).__name__}", "fix or delete it (MinIO gets a new pair)"
        ) from err


def local_path(uri: str) -> Path:
    return Path(url2pathname(urlsplit(uri).path))


def s3_credentials(settings: Settings) -> tuple[str, str] | None:
    """(access key id, secret) from settings; None: the SDK's own chain (AWS_* variables, instance role).

    Half a pair is a configuration error, never completed with a guess (the secret used to fall back
    to the access key id, sending the key as the secret).
    """
    cfg = settings.s3
    key = cfg.access_key_id.get_secret_value() if cfg.access_key_id else None
    secret = cfg.secret_access_key.get_secret_value() if cfg.secret_access_key else None
    if key is None and secret is None:
        if not cfg.local:
            return None
        return read_local_credentials(settings) or (LOCAL_DUMMY_KEY, LOCAL_DUMMY_KEY)
    if key is None or secret is None:
        missing = "EVENTLAKE_S3_SECRET_ACCESS_KEY" if secret is None else "EVENTLAKE_S3_ACCESS_KEY_ID"
        raise ConfigError(f"S3 credentials are incomplete: {missing} is not set", f"set {missing}, or unset both")
    return key, secret

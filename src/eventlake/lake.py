"""The lake root's URI and the S3 credentials to reach it (from settings; no running stack needed)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit
from urllib.request import url2pathname

from eventlake.config import Settings
from eventlake.errors import ConfigError

# The local S3 server (moto) accepts any key; these only satisfy the SDKs' signing step. Real
# credentials come from EVENTLAKE_S3_ACCESS_KEY_ID / EVENTLAKE_S3_SECRET_ACCESS_KEY (or AWS_*).
LOCAL_DUMMY_KEY = "eventlake-local"


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
        return (LOCAL_DUMMY_KEY, LOCAL_DUMMY_KEY) if cfg.local else None
    if key is None or secret is None:
        missing = "EVENTLAKE_S3_SECRET_ACCESS_KEY" if secret is None else "EVENTLAKE_S3_ACCESS_KEY_ID"
        raise ConfigError(f"S3 credentials are incomplete: {missing} is not set", f"set {missing}, or unset both")
    return key, secret

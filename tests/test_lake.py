"""S3 credentials come whole from settings, or not at all."""

from __future__ import annotations

import json

import pytest

from eventlake.errors import ConfigError
from eventlake.lake import LOCAL_DUMMY_KEY, local_credentials_file, local_path, s3_credentials
from tests.conftest import MakeSettings


def test_half_a_credential_pair_is_refused_not_completed(make_settings: MakeSettings) -> None:
    settings = make_settings("s3-half", s3={"local": False, "access_key_id": "AKIAEXAMPLE"})
    with pytest.raises(ConfigError, match="EVENTLAKE_S3_SECRET_ACCESS_KEY is not set"):
        s3_credentials(settings)
    settings = make_settings("s3-half2", s3={"local": False, "secret_access_key": "s3cr3t"})
    with pytest.raises(ConfigError, match="EVENTLAKE_S3_ACCESS_KEY_ID is not set"):
        s3_credentials(settings)


def test_credentials_from_settings_the_local_dummy_or_the_sdk_chain(make_settings: MakeSettings) -> None:
    whole = make_settings("s3-whole", s3={"local": False, "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3"})
    assert s3_credentials(whole) == ("AKIAEXAMPLE", "s3")
    local = make_settings("s3-local", s3={"local": True})
    assert s3_credentials(local) == (LOCAL_DUMMY_KEY, LOCAL_DUMMY_KEY)  # no local MinIO started here (moto)
    # the pair the local MinIO generated in this home, once it exists; configured keys still win
    path = local_credentials_file(local)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"access_key_id": "eventlake", "secret_access_key": "generated-secret"}))
    assert s3_credentials(local) == ("eventlake", "generated-secret")
    configured = make_settings(
        "s3-conf", home=local.home, s3={"local": True, "access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3"}
    )
    assert s3_credentials(configured) == ("AKIAEXAMPLE", "s3")
    path.write_text("{not json")
    with pytest.raises(ConfigError, match="credentials is unreadable"):
        s3_credentials(local)
    assert s3_credentials(make_settings("s3-none", s3={"local": False})) is None


def test_local_path_of_a_file_uri() -> None:
    assert str(local_path("file:///tmp/lake%20root")) == "/tmp/lake root"

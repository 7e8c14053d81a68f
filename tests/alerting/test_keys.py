"""The pure parts of delivery: where the idempotency key goes, and the dispatcher's bounds on what
it writes (error text, backoff) whatever a row or a receiver holds."""

from __future__ import annotations

from pathlib import Path

from eventlake.alerting.channels import message_id, slack_blocks
from eventlake.alerting.dispatcher import error_text, retry_delay_s
from eventlake.config import load_settings

PAYLOAD = {
    "kind": "firing",
    "key": "dq:x:y",
    "severity": "critical",
    "message": "m",
    "first_seen": "a",
    "last_seen": "b",
    "idempotency_key": "a7-firing-0123",
}


def test_message_id_is_the_key_at_the_sender_domain(tmp_path: Path) -> None:
    for sender, domain in (
        ("Eventlake <alerts@example.com>", "example.com"),
        ("eventlake@localhost", "localhost"),
        ("eventlake", "eventlake.invalid"),
    ):
        settings = load_settings(home=tmp_path, alert={"email_from": sender})
        assert message_id(settings, PAYLOAD) == f"<a7-firing-0123@{domain}>"
    keyless = {k: v for k, v in PAYLOAD.items() if k != "idempotency_key"}
    settings = load_settings(home=tmp_path)
    assert message_id(settings, keyless) != message_id(settings, keyless)  # a fresh one each time


def test_slack_context_shows_the_key_only_when_there_is_one() -> None:
    assert "id `a7-firing-0123`" in slack_blocks(PAYLOAD)["blocks"][2]["elements"][0]["text"]
    keyless = {k: v for k, v in PAYLOAD.items() if k != "idempotency_key"}
    assert " id " not in slack_blocks(keyless)["blocks"][2]["elements"][0]["text"]


def test_error_text_and_backoff_are_bounded(tmp_path: Path) -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    assert error_text(RuntimeError("a\x00b" * 1000)).startswith("RuntimeError: a\\0b")
    assert "\x00" not in error_text(RuntimeError("\x00")) and len(error_text(RuntimeError("x" * 5000))) == 1000
    assert error_text(Unprintable()) == "Unprintable: <unprintable>"
    settings = load_settings(home=tmp_path, alert={"retry_base_s": 2, "retry_max_s": 300})
    assert [retry_delay_s(settings, n) for n in (1, 2, 3)] == [2, 4, 8]
    assert retry_delay_s(settings, 10**6) == 300  # 2**999999 would not fit a float

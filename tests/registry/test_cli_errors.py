"""The real ``eventlake`` CLI against a Schema Registry that answers 5xx: one ``error:`` line, exit 1.

The registry here is a tiny real HTTP server that fails every request the way a registry whose
PostgreSQL is down (503, Confluent JSON body) or a proxy in front of a dead registry (502, HTML)
does. Reported before: ``eventlake stream`` died with an ``httpx.HTTPStatusError`` traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

EVENTLAKE = [str(Path(sys.executable).parent / "eventlake")]


class _Failing(BaseHTTPRequestHandler):
    status = 503
    body = json.dumps({"error_code": 50301, "message": "Schema storage (PostgreSQL) is unavailable"}).encode()
    content_type = "application/vnd.schemaregistry.v1+json"

    def _answer(self) -> None:
        if self.command in ("POST", "PUT"):
            self.rfile.read(int(self.headers.get("content-length") or 0))
        self.send_response(self.status)
        self.send_header("content-type", self.content_type)
        self.send_header("content-length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def log_message(self, format: str, *args: object) -> None:
        pass


class _BadGateway(_Failing):
    status = 502
    body = b"<html><body><h1>502 Bad Gateway</h1>\n<p>nginx</p></body></html>"
    content_type = "text/html"


@pytest.fixture(params=[_Failing, _BadGateway], ids=["503-json", "502-html"])
def failing_registry(request: pytest.FixtureRequest) -> Iterator[tuple[str, int]]:
    handler: type[_Failing] = request.param
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.status
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    "args",
    [
        ["schemas", "register"],
        ["topics", "create"],
        ["produce", "--source", "iot_sensors", "--count", "1"],
        ["stream", "--job", "bronze"],
    ],
    ids=["schemas-register", "topics-create", "produce", "stream"],
)
def test_cli_says_the_registry_failed_in_one_line(
    failing_registry: tuple[str, int], kafka_bootstrap: str, postgres_url: str, args: list[str]
) -> None:
    url, status = failing_registry
    with tempfile.TemporaryDirectory() as home:
        env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTLAKE_")}
        env |= {
            "EVENTLAKE_HOME": home,
            "EVENTLAKE_JARS_DIR": os.environ["EVENTLAKE_JARS_DIR"],
            "EVENTLAKE_KAFKA_BOOTSTRAP": kafka_bootstrap,
            "EVENTLAKE_POSTGRES_URL": postgres_url,
            "EVENTLAKE_REGISTRY_URL": url,
        }
        if args[0] == "produce":  # the topic must exist, else produce stops before asking the registry
            made = subprocess.run(
                [*EVENTLAKE, "topics", "create", "--no-schemas"],
                capture_output=True,
                text=True,
                env=env,
                timeout=240,
                check=False,
            )
            assert made.returncode == 0, made.stderr
        res = subprocess.run([*EVENTLAKE, *args], capture_output=True, text=True, env=env, timeout=240, check=False)
    output = res.stdout + res.stderr
    assert "Traceback" not in output, output
    assert res.returncode == 1, output
    errors = [line for line in res.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, res.stderr
    assert url in errors[0] and str(status) in errors[0], errors[0]
    assert "eventlake status" in errors[0], errors[0]

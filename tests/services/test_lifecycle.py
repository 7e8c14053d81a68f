"""`up`/`status`/`down` on disposable stacks: recovery after kill -9, stale pids, busy ports,
corrupt data. Each test owns its EVENTLAKE_HOME and stops what it started."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import NewTopic

from eventlake.errors import CorruptDataError, PortInUseError
from eventlake.kafka.admin import admin_client
from eventlake.net import port_is_free
from eventlake.services import Stack
from eventlake.services.base import ServiceState
from eventlake.services.process import wait_until
from tests.conftest import MakeSettings

pytestmark = pytest.mark.e2e


def _ports(stack: Stack) -> list[tuple[str, int]]:
    return [(st.host, p) for svc in stack.services if (st := svc.load_state()) is not None for p in st.ports.values()]


def _assert_all_stopped(stack: Stack) -> None:
    for svc in stack.services:
        assert svc.running_process() is None, f"{svc.name} still running"
    for host, port in _ports(stack):
        assert wait_until(lambda h=host, p=port: port_is_free(h, p), timeout=10), f"port {port} still bound"


def _produce(bootstrap: str, topic: str, n: int) -> None:
    admin = admin_client(bootstrap)
    admin.create_topics([NewTopic(topic, 3, 1)])[topic].result(30)
    p = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for i in range(n):
        p.produce(topic, key=str(i).encode(), value=f"m{i}".encode())
    assert p.flush(30) == 0


def _count(bootstrap: str, topic: str) -> int:
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": uuid.uuid4().hex, "auto.offset.reset": "earliest"})
    c.subscribe([topic])
    seen: set[bytes] = set()
    idle = 0
    while idle < 5:
        msg = c.poll(1.0)
        if msg is None or msg.error():
            idle += 1
            continue
        idle = 0
        seen.add(msg.value())
    c.close()
    return len(seen)


def test_up_kill9_up_recovers_data_then_down_frees_everything(make_settings: MakeSettings) -> None:
    stack = Stack(make_settings("life"))
    try:
        stack.up()
        status = stack.status()
        assert status["kafka"]["ok"] and status["postgres"]["ok"] and status["lake"]["ok"]
        assert status["kafka"]["bootstrap"].startswith("127.0.0.1:")
        assert Path(status["kafka"]["log"]).exists() and status["kafka"]["pid"] > 0
        json.dumps(status)  # the --json payload is serialisable

        kafka = stack.service("kafka")
        bootstrap = kafka.endpoint()
        assert bootstrap is not None
        _produce(bootstrap, "before-kill", 200)

        stack.up()  # idempotent: nothing restarts
        ref = kafka.running_process()
        assert ref is not None and ref.pid == status["kafka"]["pid"]

        os.kill(ref.pid, signal.SIGKILL)
        assert wait_until(lambda: not ref.alive(), timeout=10)
        assert not stack.status()["kafka"]["ok"]

        stack.up()
        assert kafka.endpoint() == bootstrap, "the broker comes back on the same port"
        assert _count(bootstrap, "before-kill") == 200, "messages produced before kill -9 survive"
    finally:
        stopped = stack.down()
    assert "kafka" in stopped and "postgres" in stopped
    _assert_all_stopped(stack)
    assert stack.down() == [], "down twice is safe"


def test_stale_pid_file_from_a_killed_run_is_ignored(make_settings: MakeSettings) -> None:
    stack = Stack(make_settings("stale"))
    kafka = stack.service("kafka")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    kafka.save_state(
        ServiceState(
            name="kafka",
            endpoint="127.0.0.1:1",
            ports={"broker": 0},
            log="x",
            host="127.0.0.1",
            pid=dead.pid,
            create_time=123.0,
        )
    )
    assert not kafka.is_running()
    try:
        stack.up()
        assert stack.status()["kafka"]["ok"]
    finally:
        stack.down()
    _assert_all_stopped(stack)


def test_busy_port_fails_and_leaves_nothing_half_started(make_settings: MakeSettings) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        busy = s.getsockname()[1]
        # Kafka starts first, then PostgreSQL fails on its port: Kafka must be stopped again.
        stack = Stack(make_settings("busy", postgres={"port": busy}))
        with pytest.raises(PortInUseError, match=f"127.0.0.1:{busy}.*EVENTLAKE_POSTGRES_PORT=0"):
            stack.up()
    _assert_all_stopped(stack)


def test_corrupt_kafka_data_dir_is_reported(make_settings: MakeSettings) -> None:
    settings = make_settings("corrupt")
    data = settings.home / "kafka" / "data"
    data.mkdir(parents=True)
    (data / "meta.properties").write_bytes(b"\x00\xffnot properties")
    stack = Stack(settings)
    with pytest.raises(CorruptDataError, match=r"corrupt.*delete .*data to start empty"):
        stack.up()
    _assert_all_stopped(stack)
    # Data with no meta.properties at all is refused too, rather than formatted over.
    (data / "meta.properties").unlink()
    (data / "raw.events-0").mkdir()
    with pytest.raises(CorruptDataError, match=r"no meta\.properties"):
        stack.up()
    _assert_all_stopped(stack)

"""A Spark standalone cluster on loopback for tests: a master and workers started from pyspark's own
jars (``java -cp <pyspark>/jars/* org.apache.spark.deploy.master.Master`` / ``...worker.Worker``), each
on free ports, logs and work directories under ``root``.

Its state comes from the master's JSON page (``/json/``): workers with their state and used cores,
and the running applications with their cores and executor memory.
"""

from __future__ import annotations

import contextlib
import os
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
import pyspark

from eventlake.net import free_port
from eventlake.services.process import ProcessRef, spawn, tail, terminate, wait_until

HOST = "127.0.0.1"
SPARK_HOME = Path(pyspark.__file__).parent
#: each daemon's own heap (the executors get theirs from the application)
DAEMON_HEAP = "256m"


@dataclass
class SparkCluster:
    root: Path
    java: Path
    workers: int = 2
    cores: int = 1
    memory: str = "1g"
    port: int = 0
    ui_port: int = 0
    master: ProcessRef | None = None
    worker_refs: list[ProcessRef] = field(default_factory=list)

    @property
    def url(self) -> str:
        """The master URL a driver connects to: ``spark://127.0.0.1:P``."""
        return f"spark://{HOST}:{self.port}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(SPARK_HOME),  # the worker builds its executors' classpath from <home>/jars
            "SPARK_SCALA_VERSION": "2.13",
            "JAVA_HOME": str(self.java.parent.parent),
            "SPARK_LOCAL_IP": HOST,
        }

    def _daemon(self, main: str, *args: str, log: str) -> ProcessRef:
        argv = [str(self.java), f"-Xmx{DAEMON_HEAP}", "-cp", f"{SPARK_HOME / 'jars'}/*", main, *args]
        return spawn(argv, self.root / log, env=self._env(), cwd=self.root)

    def start(self) -> SparkCluster:
        """Start the master, then the workers; return once every worker is ALIVE at the master."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.port, self.ui_port = free_port(HOST), free_port(HOST)
        self.master = self._daemon(
            "org.apache.spark.deploy.master.Master",
            *("--host", HOST, "--port", str(self.port), "--webui-port", str(self.ui_port)),
            log="master.log",
        )
        if not wait_until(lambda: self._json() is not None, timeout=90, interval=0.5, abort=self._dead):
            raise RuntimeError(f"the Spark master did not start: {self._dead()}\n" + self.log_tail("master.log"))
        for i in range(self.workers):
            work = self.root / f"worker-{i}"
            work.mkdir(exist_ok=True)
            self.worker_refs.append(
                self._daemon(
                    "org.apache.spark.deploy.worker.Worker",
                    self.url,
                    *("--host", HOST, "--webui-port", str(free_port(HOST))),
                    *("--cores", str(self.cores), "--memory", self.memory, "--work-dir", str(work)),
                    log=f"worker-{i}.log",
                )
            )
        if not wait_until(lambda: len(self.alive_workers()) == self.workers, timeout=90, interval=0.5):
            logs = "\n".join(self.log_tail(f"worker-{i}.log") for i in range(self.workers))
            raise RuntimeError(f"{len(self.alive_workers())} of {self.workers} Spark workers registered\n{logs}")
        return self

    def _dead(self) -> str | None:
        return "the master exited" if self.master is None or not self.master.alive() else None

    def _json(self) -> dict[str, Any] | None:
        """The master's state page, or None while it does not answer."""
        try:
            resp = httpx.get(f"http://{HOST}:{self.ui_port}/json/", timeout=5)
        except httpx.HTTPError:
            return None
        if resp.status_code != 200:
            return None
        state: dict[str, Any] = resp.json()
        return state

    def state(self) -> dict[str, Any]:
        state = self._json()
        assert state is not None, "the Spark master does not answer"
        return state

    def alive_workers(self) -> list[dict[str, Any]]:
        state = self._json()
        return [w for w in (state or {}).get("workers", []) if w["state"] == "ALIVE"]

    def apps(self) -> list[dict[str, Any]]:
        """The running applications (``cores``, ``memoryperexecutor`` in MB, ...)."""
        apps: list[dict[str, Any]] = self.state().get("activeapps", [])
        return apps

    def executors(self, worker: int) -> list[psutil.Process]:
        """The executor processes worker ``worker`` runs for applications."""
        proc = self.worker_refs[worker].process()
        assert proc is not None, f"worker {worker} is not running"
        return [p for p in proc.children(recursive=True) if "CoarseGrainedExecutorBackend" in " ".join(p.cmdline())]

    def kill_worker(self, worker: int) -> list[int]:
        """kill -9 worker ``worker`` and the executors it runs, as a lost machine: their pids."""
        proc = self.worker_refs[worker].process()
        assert proc is not None, f"worker {worker} is not running"
        family = [proc, *proc.children(recursive=True)]
        for p in family:
            with contextlib.suppress(psutil.NoSuchProcess):  # an executor that ended meanwhile
                p.send_signal(signal.SIGKILL)
        _gone, alive = psutil.wait_procs(family, timeout=10)
        assert not alive, f"still running after SIGKILL: {alive}"
        return [p.pid for p in family]

    def log_tail(self, name: str, lines: int = 40) -> str:
        return "\n".join(tail(self.root / name, lines))

    def stop(self) -> None:
        """Workers (and their executors), then the master."""
        for ref in self.worker_refs:
            terminate(ref, timeout=15)
        if self.master is not None:
            terminate(self.master, timeout=15)

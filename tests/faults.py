"""Faults that tests inject into real servers: a TCP proxy on loopback in front of one, and a
SIGSTOP pause of its processes.

``cut()`` drops every open connection (what a server restart does to its clients); ``blackhole()``
keeps accepting but forwards nothing (a hung network path: clients wait until their own timeouts);
``refuse()`` drops every open connection and refuses new ones (the server is down: clients fail
fast); ``heal()`` forwards again.

:func:`paused` SIGSTOPs a server's process and every process under it, and SIGCONTs them when the
block ends (however it ends): the kernel still accepts connections into the listen backlog and
acknowledges every packet, but nothing answers (a frozen VM, a GC or disk stall), so clients see
hangs where a refused or reset connection would fail at once.
"""

from __future__ import annotations

import contextlib
import select
import signal
import socket
import threading
import time
from collections.abc import Iterator

import psutil


class TcpProxy:
    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self._server = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._server.getsockname()[1])
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._black = False
        self._refuse = False
        self._closed = False
        self.refused = 0  # connections turned away while refusing: the client did try
        threading.Thread(target=self._accept, name="tcp-proxy", daemon=True).start()

    def url_for(self, url: str) -> str:
        """``url`` with its ``host:port`` replaced by the proxy's."""
        host, port = self.target
        return url.replace(f"{host}:{port}", f"127.0.0.1:{self.port}", 1)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            if self._refuse:
                self.refused += 1
                client.close()
                continue
            if self._black:
                with self._lock:
                    self._held.append(client)  # accepted, never answered
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._pairs.append((client, upstream))
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()

    def _pump(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 0.5)
                if self._black:
                    continue
                for s in ready:
                    data = s.recv(65536)
                    if not data:
                        return
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            # The pair was closed by cut()/refuse() from another thread: select() then sees fd -1
            # (ValueError) rather than a socket error. Either way this pump's connection is over.
            return
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def cut(self) -> None:
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            for s in pair:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                    s.close()

    def blackhole(self) -> None:
        self._black = True

    def refuse(self) -> None:
        self._refuse = True
        self.cut()

    def heal(self) -> None:
        self._black = False
        self._refuse = False
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            s.close()

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.heal()
        self._server.close()


@contextlib.contextmanager
def paused(pid: int) -> Iterator[list[psutil.Process]]:
    """SIGSTOP process ``pid``, then its descendants (a stopped parent forks no more of them); yields
    them once every one is stopped; SIGCONT all of them when the block ends."""
    root = psutil.Process(pid)
    root.send_signal(signal.SIGSTOP)
    stopped = [root]
    try:
        for child in root.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):  # a child that exited meanwhile needs no pause
                child.send_signal(signal.SIGSTOP)
                stopped.append(child)
        deadline = time.monotonic() + 5
        while not all(_stopped(p) for p in stopped):
            assert time.monotonic() < deadline, [(p.pid, p.status()) for p in stopped if not _stopped(p)]
            time.sleep(0.05)
        yield stopped
    finally:
        for p in stopped:
            with contextlib.suppress(psutil.NoSuchProcess):
                p.send_signal(signal.SIGCONT)


def _stopped(p: psutil.Process) -> bool:
    try:
        return p.status() == psutil.STATUS_STOPPED
    except psutil.NoSuchProcess:
        return True  # gone: nothing left to pause

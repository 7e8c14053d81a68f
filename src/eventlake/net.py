"""Ports on this host: free ones, taken ones, and the one a component should use."""

from __future__ import annotations

import socket

from eventlake.errors import PortInUseError


def free_port(host: str) -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_is_free(host: str, port: int) -> bool:
    """True if ``host:port`` can be bound (SO_REUSEADDR: TIME_WAIT leftovers do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
        return True


def port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    """True if something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def choose_port(component: str, host: str, configured: int, previous: int | None, env_var: str) -> int:
    """Pick the port for a component.

    A configured port must be free (else :class:`PortInUseError`); otherwise the port used last
    time is kept when it is still free, so clients and checkpoints keep working across restarts.
    """
    if configured:
        if not port_is_free(host, configured):
            raise PortInUseError(
                f"{component}: port {host}:{configured} is already in use by another process",
                f"stop that process, or set {env_var}=0 to let eventlake pick a free port",
            )
        return configured
    if previous and port_is_free(host, previous):
        return previous
    return free_port(host)

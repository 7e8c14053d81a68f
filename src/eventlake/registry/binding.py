"""Where the registry may listen: writes are open when no credentials are set, so only on loopback.

Reads stay open everywhere (Confluent's default). A registry reachable from other hosts with open
writes would let anyone register, permanently delete or switch a subject to READONLY, so both the
process (``python -m eventlake.registry``) and the service manager refuse that before binding.
"""

from __future__ import annotations

import ipaddress

from eventlake.config import RegistrySettings
from eventlake.errors import ConfigError


def is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


def require_write_auth(host: str, cfg: RegistrySettings) -> None:
    """Raise :class:`ConfigError` (one line naming the settings) for a non-loopback ``host`` with open writes."""
    if is_loopback(host) or cfg.auth_token is not None or cfg.basic_auth is not None:
        return
    raise ConfigError(
        f"refusing to serve the registry on {host} with open writes",
        "set EVENTLAKE_REGISTRY_AUTH_TOKEN (or EVENTLAKE_REGISTRY_BASIC_AUTH),"
        " or bind 127.0.0.1 (EVENTLAKE_REGISTRY_HOST)",
    )

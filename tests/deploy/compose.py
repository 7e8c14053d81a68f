"""What docker compose would refuse or get wrong that the Compose JSON schema cannot see."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

HEALTHY, COMPLETED, STARTED = "service_healthy", "service_completed_successfully", "service_started"


def depends_on(service: Mapping[str, Any]) -> dict[str, str]:
    """target -> condition, for both the short (list) and long (mapping) syntax."""
    deps = service.get("depends_on", {})
    if isinstance(deps, list):
        return dict.fromkeys(deps, STARTED)
    return {name: spec.get("condition", STARTED) for name, spec in deps.items()}


def one_shot(service: Mapping[str, Any]) -> bool:
    return bool(service.get("restart", "no") == "no")


def problems(doc: Mapping[str, Any]) -> list[str]:
    services: Mapping[str, Any] = doc.get("services", {})
    out = []
    for name, service in services.items():
        for target, condition in depends_on(service).items():
            if target not in services:
                out.append(f"{name}: depends_on {target}, which is not a service")
            elif condition == HEALTHY and "healthcheck" not in services[target]:
                out.append(f"{name}: waits for {target} to be healthy, but {target} has no healthcheck")
            elif condition == COMPLETED and not one_shot(services[target]):
                out.append(f"{name}: waits for {target} to complete, but {target} restarts")
            elif condition == STARTED:
                out.append(f"{name}: depends_on {target} without a condition (use service_healthy)")
        if not one_shot(service) and "healthcheck" not in service:
            out.append(f"{name}: a long-running service without a healthcheck")
        for port in service.get("ports", []):
            if not str(port).startswith("127.0.0.1:"):
                out.append(f"{name}: port {port} is published on every interface (bind 127.0.0.1)")
        for volume in service.get("volumes", []):
            source = str(volume).split(":", 1)[0]
            if not source.startswith((".", "/")) and source not in (doc.get("volumes") or {}):
                out.append(f"{name}: named volume {source} is not declared under volumes")
    out += [f"depends_on cycle: {' -> '.join(cycle)}" for cycle in _cycles(services)]
    return out


def _cycles(services: Mapping[str, Any]) -> list[list[str]]:
    found, state = [], dict.fromkeys(services, 0)  # 0 new, 1 on the stack, 2 done

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in depends_on(services[name]):
            if target not in services:
                continue
            if state[target] == 1:
                found.append([*path[path.index(target) :], target])
            elif state[target] == 0:
                visit(target, [*path, target])
        state[name] = 2

    for name in services:
        if state[name] == 0:
            visit(name, [name])
    return found

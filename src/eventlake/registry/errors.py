"""Schema Registry errors, with the HTTP status and ``error_code`` Confluent clients expect."""

from __future__ import annotations


class RegistryError(Exception):
    """An API error: rendered as ``{"error_code": code, "message": message}`` with ``status``."""

    def __init__(self, status: int, error_code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.message = message


def subject_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40401, f"Subject '{subject}' not found.")


def version_not_found(subject: str, version: int | str) -> RegistryError:
    return RegistryError(404, 40402, f"Version {version} not found for subject '{subject}'.")


def schema_not_found(detail: str = "Schema not found") -> RegistryError:
    return RegistryError(404, 40403, detail)


def subject_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(404, 40404, f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently")


def subject_not_soft_deleted(subject: str) -> RegistryError:
    return RegistryError(404, 40405, f"Subject '{subject}' was not deleted first before being permanently deleted")


def version_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404, 40406, f"Subject '{subject}' Version {version} was soft deleted. Set permanent=true to delete permanently"
    )


def version_not_soft_deleted(subject: str, version: int) -> RegistryError:
    return RegistryError(
        404, 40407, f"Subject '{subject}' Version {version} was not deleted first before being permanently deleted"
    )


def subject_config_not_found(subject: str) -> RegistryError:
    return RegistryError(404, 40408, f"Subject '{subject}' does not have subject-level compatibility configured")


def invalid_schema(detail: str) -> RegistryError:
    return RegistryError(422, 42201, f"Invalid schema: {detail}")


def invalid_version(version: str) -> RegistryError:
    return RegistryError(
        422,
        42202,
        f"The specified version '{version}' is not a valid version id. "
        'Allowed values are between [1, 2^31-1] and the string "latest"',
    )


def invalid_compatibility(level: object) -> RegistryError:
    return RegistryError(422, 42203, f"Invalid compatibility level: {level!r}")


def invalid_mode(mode: object) -> RegistryError:
    return RegistryError(422, 42204, f"Invalid mode: {mode!r}")


def operation_not_permitted(detail: str) -> RegistryError:
    return RegistryError(422, 42205, detail)


def incompatible(messages: list[str]) -> RegistryError:
    detail = "; ".join(messages) if messages else "incompatible"
    return RegistryError(409, 409, f"Schema being registered is incompatible with an earlier schema: {detail}")


def bad_request(detail: str) -> RegistryError:
    return RegistryError(400, 400, detail)


def unauthorized() -> RegistryError:
    return RegistryError(401, 401, "Unauthorized: this operation needs credentials")


def too_large(limit: int) -> RegistryError:
    return RegistryError(413, 413, f"Request body larger than {limit} bytes")


def storage_unavailable(detail: str) -> RegistryError:
    """PostgreSQL does not answer (restarting, down, unreachable): a retryable 503, not a 500."""
    return RegistryError(503, 50301, f"Schema storage (PostgreSQL) is unavailable: {detail}; retry once it is back")


def internal(detail: str) -> RegistryError:
    return RegistryError(500, 50001, f"Internal error: {detail}")

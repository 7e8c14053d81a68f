"""EVENTLAKE_* variables against the typed config model (src/eventlake/config.py).

The model reads ``EVENTLAKE_<field>`` for top-level fields and ``EVENTLAKE_<section>_<key>`` for
nested ones (env_nested_delimiter ``_``, env_nested_max_split=1). A typo in a nested key is an error
of the model itself (extra="forbid"); a top-level typo (``EVENTLAKE_LOGLEVEL``) would be ignored
silently, so :func:`unknown_variables` catches those.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from pydantic import BaseModel

from eventlake.config import Settings, load_settings

#: read by other code than the settings model: the config file's path, the DAGs' CLI path
NOT_SETTINGS = frozenset({"EVENTLAKE_CONFIG", "EVENTLAKE_CLI"})


def unknown_variables(names: set[str]) -> set[str]:
    """The EVENTLAKE_* names that no settings field (and nothing in NOT_SETTINGS) reads."""
    fields = Settings.model_fields
    unknown = set()
    for name in names:
        if not name.startswith("EVENTLAKE_") or name in NOT_SETTINGS:
            continue
        rest = name.removeprefix("EVENTLAKE_").lower()
        if rest in fields and not _is_section(rest):
            continue
        section, _, key = rest.partition("_")
        annotation = fields[section].annotation if section in fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel) and key in annotation.model_fields):
            unknown.add(name)
    return unknown


def _is_section(name: str) -> bool:
    annotation = Settings.model_fields[name].annotation
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


@contextmanager
def only_env(env: Mapping[str, str]) -> Iterator[None]:
    """The process environment with every EVENTLAKE_* variable replaced by ``env``'s."""
    saved = dict(os.environ)
    try:
        for key in [k for k in os.environ if k.startswith("EVENTLAKE_")]:
            del os.environ[key]
        os.environ.update({k: v for k, v in env.items() if k.startswith("EVENTLAKE_")})
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def load_with(env: Mapping[str, str]) -> Settings:
    """Settings as a process with exactly this EVENTLAKE_* environment would load them."""
    with only_env(env):
        return load_settings()

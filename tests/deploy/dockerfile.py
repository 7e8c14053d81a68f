"""A small Dockerfile reader and the project's image policy (beyond hadolint's rules).

Policy: multi-stage; every base image pinned to an exact version tag (or a digest), never ``latest``;
the final stage runs as a numeric non-root USER and has a HEALTHCHECK; no ADD of URLs; every COPY
source from the build context exists and is not excluded by ``.dockerignore``.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Instruction:
    line: int
    keyword: str
    args: str


def parse(text: str) -> list[Instruction]:
    """Instructions with continuation lines joined and comments dropped."""
    out: list[Instruction] = []
    buffer, start = "", 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buffer and (not stripped or stripped.startswith("#")):
            continue
        if buffer and stripped.startswith("#"):
            continue
        if not buffer:
            start = number
        if stripped.endswith("\\"):
            buffer += stripped[:-1] + " "
            continue
        buffer += stripped
        keyword, _, args = buffer.partition(" ")
        out.append(Instruction(start, keyword.upper(), args.strip()))
        buffer = ""
    return out


_FROM = re.compile(r"^(?:--platform=\S+\s+)?(?P<image>\S+)(?:\s+AS\s+(?P<stage>\S+))?$", re.IGNORECASE)
_PINNED_TAG = re.compile(r"^[\w.-]*\d[\w.-]*$")  # a tag with a version number in it


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    out: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def _image_problem(image: str, known_stages: set[str]) -> str | None:
    if image.lower() in known_stages or image == "scratch":
        return None
    if "@sha256:" in image:
        return None
    name, _, tag = image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    if not tag:
        return f"base image {image} has no tag: pin an exact version"
    if tag == "latest" or not _PINNED_TAG.match(tag):
        return f"base image {image} is not pinned to a version tag"
    del name
    return None


def policy_problems(text: str) -> list[str]:
    instructions = parse(text)
    problems: list[str] = []
    parts = stages(instructions)
    if len(parts) < 2:
        problems.append("not a multi-stage build (build tools would stay in the final image)")
    known: set[str] = set()
    for part in parts:
        match = _FROM.match(part[0].args)
        if match is None:
            problems.append(f"line {part[0].line}: cannot read FROM {part[0].args!r}")
            continue
        if (problem := _image_problem(match.group("image"), known)) is not None:
            problems.append(f"line {part[0].line}: {problem}")
        if match.group("stage"):
            known.add(match.group("stage").lower())
    for ins in instructions:
        if ins.keyword == "ADD" and re.search(r"https?://", ins.args):
            problems.append(f"line {ins.line}: ADD of a URL: download in a build stage with a checksum instead")
    final = parts[-1] if parts else []
    users = [ins for ins in final if ins.keyword == "USER"]
    if not users:
        problems.append("the final stage sets no USER: it would run as root")
    else:
        user = users[-1].args.split(":")[0]
        if user in {"root", "0"}:
            problems.append(f"line {users[-1].line}: the final stage runs as root")
        elif not user.isdigit():
            problems.append(f"line {users[-1].line}: USER {user} is not numeric (runAsNonRoot cannot verify it)")
    checks = [ins for ins in final if ins.keyword == "HEALTHCHECK"]
    if not checks or checks[-1].args.upper().startswith("NONE"):
        problems.append("the final stage has no HEALTHCHECK")
    return problems


def copy_sources(text: str) -> list[tuple[int, str]]:
    """(line, source) of every COPY/ADD from the build context (not from another stage)."""
    out = []
    for ins in parse(text):
        if ins.keyword not in {"COPY", "ADD"}:
            continue
        words = ins.args.split()
        if any(w.startswith("--from=") for w in words):
            continue
        paths = [w for w in words if not w.startswith("--")]
        if paths and paths[0].startswith("["):
            continue  # JSON form: not used here
        out += [(ins.line, src) for src in paths[:-1]]
    return out


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether ``.dockerignore`` patterns exclude ``path`` (or a folder above it); ``!`` re-includes."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").strip("/")
        if any(fnmatch.fnmatch(c, pat) or fnmatch.fnmatch(c, pat.replace("**/", "")) for c in candidates):
            excluded = not negate
    return excluded


def dockerignore_patterns(path: Path) -> list[str]:
    return [
        line.strip()
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]

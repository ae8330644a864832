"""Find, parse and resolve target profiles.

Resolution order for `--target NAME` (first match wins):
  1. NAME is a path (ends in .toml or contains a path separator): that file.
  2. ./targets/NAME.toml (the current project's folder)
  3. each folder in $EDGEOPT_TARGETS (os.pathsep-separated)
  4. the built-in profiles shipped with edgeopt.
`extends = "OTHER"` is resolved the same way, by name only, except that
`extends = "./file.toml"` may name a file in the same folder as the profile
(no `..`, no absolute paths), so a profile cannot pull in arbitrary files.
A profile that shadows another of its own name and extends that name (mobile-cpu.toml in
$EDGEOPT_TARGETS with `extends = "mobile-cpu"`) extends the next profile of that name in the order.
The first entry named NAME.toml in the order is the profile NAME: one that is not a regular file (a
folder, a device, a dangling link) is refused naming what it is, as `targets list` reports it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edgeopt.errors import ProfileError
from edgeopt.profiles.schema import Profile

MAX_EXTENDS_DEPTH = 8
MAX_NAME = 64
PROFILE_NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
MAX_TOML_DEPTH = 8  # [section.subsection] and a list of lists is 4
MAX_PROFILE_BYTES = 1 << 20


def builtin_dir() -> Path:
    """Built-in profiles: packaged copy in a wheel, the repo's targets/ in a checkout."""
    here = Path(__file__).resolve().parent.parent
    packaged = here / "_targets"
    return packaged if packaged.is_dir() else here.parent / "targets"


def search_dirs() -> list[Path]:
    dirs = [Path.cwd() / "targets"]
    env = os.environ.get("EDGEOPT_TARGETS", "")
    dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs.append(builtin_dir())
    seen: list[Path] = []
    for d in dirs:
        r = d.resolve()
        if r not in seen:
            seen.append(r)
    return seen


@dataclass(frozen=True)
class ResolvedProfile:
    profile: Profile
    path: Path  # the file the user named
    chain: tuple[Path, ...]  # the file, then each file it extends
    sha256: str  # of the resolved profile as canonical JSON

    @property
    def name(self) -> str:
        return self.profile.name


def _entries(name: str) -> list[Path]:
    """Every NAME.toml in search order, whatever it is (a dangling link or a device too)."""
    return [d / f"{name}.toml" for d in search_dirs() if os.path.lexists(d / f"{name}.toml")]


def _the_profile(entry: Path) -> Path:
    """`entry` if it is a regular file (links followed); ProfileError saying what it is otherwise."""
    from edgeopt.input_files import regular_file

    regular_file(entry, "profile", ProfileError)
    return entry


def list_profiles() -> dict[str, Path]:
    """Profile name -> file, first match in search order (what `find_profile(name)` loads or refuses)."""
    found: dict[str, Path] = {}
    for d in search_dirs():
        if d.is_dir():
            for f in sorted(d.glob("*.toml")):
                found.setdefault(f.stem, f)
    return dict(sorted(found.items()))


def _looks_like_path(target: str) -> bool:
    return target.endswith(".toml") or "/" in target or os.sep in target


def check_profile_name(name: str, where: str = "target") -> str:
    """A profile name is a short file stem: letters, digits, '.', '_', '-' (so it maps to NAME.toml safely)."""
    if not PROFILE_NAME.fullmatch(name):
        shown = name if len(name) <= 60 else name[:57] + "..."
        msg = (
            f"{where} {shown!r} is not a profile name (1-{MAX_NAME} letters, digits, '.', '_' or '-'); "
                           "give a name from `edgeopt targets list` or a path to a .toml file"
        )
        raise ProfileError(msg)
    return name


def find_profile(target: str) -> Path:
    if _looks_like_path(target):
        from edgeopt.input_files import regular_file

        p = Path(target)
        try:
            os.lstat(p)
        except FileNotFoundError:
            msg = f"profile file not found: {target}"
            raise ProfileError(msg) from None
        except (OSError, ValueError):
            pass  # regular_file names the problem (name too long, NUL byte, ...)
        regular_file(p, "profile", ProfileError)
        return p
    check_profile_name(target)
    entries = _entries(target)
    if entries:
        return _the_profile(entries[0])
    available = ", ".join(list_profiles()) or "none"
    msg = f"unknown target '{target}'; available: {available} (or give a path to a .toml file)"
    raise ProfileError(msg)


def _depth(node: Any) -> int:
    """Nesting depth of tables and arrays (iterative: no recursion on hostile input)."""
    deepest, todo = 0, [(node, 1)]
    while todo:
        item, d = todo.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, d)
        if d > MAX_TOML_DEPTH:
            break
        todo.extend((c, d + 1) for c in children)
    return deepest


def _read_toml(path: Path) -> dict[str, Any]:
    from edgeopt.input_files import read_regular

    raw = read_regular(path, "profile", ProfileError, limit=MAX_PROFILE_BYTES)
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except tomllib.TOMLDecodeError as exc:
        msg = f"{path}: not valid TOML: {exc}"
        raise ProfileError(msg) from None
    except UnicodeDecodeError as exc:
        msg = f"{path}: cannot read profile: {exc}"
        raise ProfileError(msg) from None
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_TOML_DEPTH:
        msg = (
            f"{path}: tables or arrays nested deeper than {MAX_TOML_DEPTH} levels; a profile "
                           "needs at most 3"
        )
        raise ProfileError(msg)
    return data


def _resolve_extends(ref: str, origin: Path) -> Path:
    if ref.startswith("./"):
        rel = Path(ref[2:])
        if rel.is_absolute() or ".." in rel.parts or rel.suffix != ".toml":
            msg = f"{origin}: extends = '{ref}' must name a .toml file in the same folder, or a profile name"
            raise ProfileError(msg)
        target = origin.parent / rel
        if not target.is_file():
            msg = f"{origin}: extends = '{ref}': file not found"
            raise ProfileError(msg)
        if target.resolve().parent != origin.parent.resolve():  # a symlink out of the folder
            msg = f"{origin}: extends = '{ref}' leads outside the profile's folder (symlink); refused"
            raise ProfileError(msg)
        return target
    if _looks_like_path(ref):
        msg = f"{origin}: extends = '{ref[:100]}' must be a profile name or './file.toml' in the same folder"
        raise ProfileError(msg)
    check_profile_name(ref, f"{origin}: extends =")
    entries = _entries(ref)
    here = origin.absolute().parent.resolve() / origin.name  # the entry `origin` is (search dirs are resolved)
    if here in entries:  # a profile shadowing its own name extends the next one of that name
        later = entries[entries.index(here) + 1:]
        if not later:
            msg = (f"{origin}: extends = '{ref}' names this profile itself and no later folder in the search "
                   "order (./targets, $EDGEOPT_TARGETS, built-ins) has one of that name; extend another profile")
            raise ProfileError(msg)
        return _the_profile(later[0])
    if not entries:
        available = ", ".join(list_profiles()) or "none"
        msg = f"{origin}: extends = '{ref}' is not a known profile; available: {available}"
        raise ProfileError(msg)
    return _the_profile(entries[0])


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _raw_chain(path: Path) -> tuple[dict[str, Any], tuple[Path, ...]]:
    chain: list[Path] = []
    layers: list[dict[str, Any]] = []
    current: Path | None = path
    while current is not None:
        resolved = current.resolve()
        if resolved in chain:
            loop = chain[chain.index(resolved):]
            if len(loop) == 1:
                msg = f"{resolved}: extends names the file itself; extend another profile"
            else:
                msg = (f"extends forms a cycle: {', '.join(map(str, loop))} (each extends the next, the last the "
                       "first); remove one of these extends")
            raise ProfileError(msg)
        if len(chain) >= MAX_EXTENDS_DEPTH:
            msg = f"{path}: extends chain deeper than {MAX_EXTENDS_DEPTH}"
            raise ProfileError(msg)
        chain.append(resolved)
        data = _read_toml(current)
        ext = data.pop("extends", None)
        if ext is not None and not isinstance(ext, str):
            msg = f"{current}: extends must be a string (a profile name)"
            raise ProfileError(msg)
        data.setdefault("name", current.stem) if not layers else data.pop("name", None)
        layers.append(data)
        current = _resolve_extends(ext, current) if ext else None
    merged: dict[str, Any] = {}
    for layer in reversed(layers):
        if isinstance(layer.get("search"), dict):  # a search space is one thing: a child's [search] replaces its parent's
            merged.pop("search", None)
        merged = _deep_merge(merged, layer)
    return merged, tuple(chain)


def format_validation_error(path: Path, exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
            section = err["loc"][:-1]
            allowed = _allowed_keys(section)
            if allowed:
                msg += f" (allowed: {', '.join(allowed)})"
        elif err["type"] == "enum" and "expected" in (err.get("ctx") or {}):
            msg = f"must be one of {err['ctx']['expected']}"
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        got = err.get("input")
        if err["type"] not in ("extra_forbidden", "missing") and not isinstance(got, dict):
            msg += f" (got {got!r})"
        parts.append(msg if not err["loc"] else f"{loc}: {msg}")  # a whole-profile rule names its keys itself
    more = f" (+{len(parts) - 1} more)" if len(parts) > 1 else ""
    return f"invalid profile {path}: {parts[0]}{more}"


def _allowed_keys(section: tuple[Any, ...]) -> list[str]:
    model: Any = Profile
    for key in section:
        field = model.model_fields.get(str(key))
        if field is None or not hasattr(field.annotation, "model_fields"):
            return []
        model = field.annotation
    return list(model.model_fields)


def profile_sha256(profile: Profile) -> str:
    """The hash of a resolved profile: sha256 of its canonical JSON."""
    canonical = json.dumps(profile.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def with_profile(resolved: ResolvedProfile, profile: Profile) -> ResolvedProfile:
    """`resolved` with `profile` in place of its own (an `edgeopt search` trial: the target with its choices)."""
    return ResolvedProfile(profile, resolved.path, resolved.chain, profile_sha256(profile))


def load_profile(target: str | Path) -> ResolvedProfile:
    """Resolve `target` (name or path) into a validated, frozen profile."""
    path = find_profile(str(target))
    merged, chain = _raw_chain(path)
    try:
        profile = Profile.model_validate(merged)
    except ValidationError as exc:
        raise ProfileError(format_validation_error(path, exc)) from None
    return ResolvedProfile(profile, path, chain, profile_sha256(profile))

"""Typed settings from YAML and `key=value`: the one way every command builds its config.

A config is a dataclass (UnlearnConfig, StudyConfig, InjectConfig). `read_yaml` reads a file
of its keys, `with_overrides` applies command-line `key=value` strings on top, and `build`
checks every key and value against the dataclass's fields: an unknown key is named with the
closest known one, a value of the wrong type with the type it needs, each in one line.
"""

import dataclasses
import difflib
import typing
from collections.abc import Iterable
from pathlib import Path

import yaml

from quail.errors import QuailError


def read_yaml(path: str | Path, what: str = "config file") -> dict:
    """The mapping a YAML file holds; one line naming the problem if it holds none."""
    path = Path(path)
    if not path.is_file():
        raise QuailError(f"{what} {path} does not exist: check the path")
    try:
        values = yaml.safe_load(path.read_text("utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        first = str(error).splitlines()[0]
        raise QuailError(f"{what} {path} is not valid YAML: {first}") from None
    if not isinstance(values, dict):
        raise QuailError(f"{what} {path} must hold a mapping of key: value")
    return values


def with_overrides(values: dict, items: Iterable[str], nested: tuple[str, ...] = ()) -> dict:
    """`values` with each `key=value` applied, the value read as YAML (1e-5, true, [a, b]);
    `head.key=value` sets one entry of the mapping `head` where `head` is in `nested`."""
    values = dict(values)
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise QuailError(f"override {item!r} is not key=value: write e.g. lr=1e-5")
        try:
            value = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError:
            value = raw  # e.g. a spec list with a colon in it: keep the text as given
        head, dot, sub = key.partition(".")
        if dot and head in nested:
            values[head] = {**(values.get(head) or {}), sub: value}
        else:
            values[key] = value
    return values


def check_keys(values: dict, known: Iterable[str], what: str) -> None:
    """Reject the first unknown key, naming the closest known one (or all of them)."""
    known = sorted(known)
    for key in sorted(set(values) - set(known), key=str):
        close = difflib.get_close_matches(str(key), known, n=1, cutoff=0.6)
        hint = f"did you mean '{close[0]}'?" if close else f"known keys: {', '.join(known)}"
        raise QuailError(f"unknown {what} '{key}'; {hint}")


def build(cls, values: dict, what: str = "config key"):
    """An instance of the dataclass `cls` from `values`, every key and value checked; `what`
    names a key in messages ("config key", "inject setting")."""
    types = typing.get_type_hints(cls)
    check_keys(values, [f.name for f in dataclasses.fields(cls)], what)
    return cls(
        **{key: coerce(f"{what} '{key}'", value, types[key]) for key, value in values.items()}
    )


def coerce(name: str, value, kind):
    """`value` checked against the annotated type `kind`; numbers are widened (YAML 1.1 reads
    1e-5, without a dot, as a string), `true`/`false` strings read as booleans, and a
    comma-separated string read as a list of strings."""
    args = typing.get_args(kind)
    if type(None) in args:
        if value is None:
            return None
        kind = next(a for a in args if a is not type(None))
    origin = typing.get_origin(kind)
    if origin is list:
        element = (typing.get_args(kind) or (object,))[0]
        if element is str and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or (
            element is str and not all(isinstance(v, str) for v in value)
        ):
            wanted = "a list of strings" if element is str else "a list"
            raise QuailError(f"{name} must be {wanted}, got {value!r}: write e.g. [a, b]")
        return value
    if origin is dict or kind is dict:
        if value is None:  # an empty `unlearn:` line
            return {}
        if not isinstance(value, dict):
            raise QuailError(f"{name} must be a mapping of key: value, got {value!r}")
        return value
    if kind is float and isinstance(value, (int, str)) and not isinstance(value, bool):
        try:
            return float(value)
        except ValueError:
            pass
    if kind is bool and isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
        raise QuailError(f"{name} must be {kind.__name__}, got {value!r}")
    return value

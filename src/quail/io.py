"""Outputs that appear whole or not at all: write to a temporary sibling, then move into place."""

import contextlib
import json
import math
import os
import shutil
import tempfile
from pathlib import Path

from quail.errors import QuailError


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise QuailError(f"output path {path} is a file: pass a folder path for --out")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise QuailError(f"output folder {path} is not empty: choose another --out or --overwrite")
    existing = path.absolute().parent
    while not existing.exists():  # the folder the output will be created in, or its nearest
        existing = existing.parent  # ancestor that exists: checked before any work is done
    if not existing.is_dir():
        raise QuailError(f"output path {path} is below the file {existing}: choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QuailError(f"cannot write in {existing} (permission denied): choose another --out")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False):
    """Yield a temporary folder next to `path`; on success it replaces `path`, on error it goes."""
    path = check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    tmp.chmod(0o777 & ~_umask())  # mkdtemp makes it private; outputs are ordinary folders
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if path.exists():
        shutil.rmtree(path)
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.tmp-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_json(path: str | os.PathLike, data) -> None:
    """Write strict JSON: NaN and infinities, which JSON cannot hold (Python would write the
    invalid tokens NaN and Infinity), become null, as undefined figures are everywhere else."""
    text = json.dumps(_finite_or_null(data), indent=2, sort_keys=False, allow_nan=False)
    atomic_write_text(path, text + "\n")


def _finite_or_null(value):
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: _finite_or_null(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_or_null(item) for item in value]
    return value

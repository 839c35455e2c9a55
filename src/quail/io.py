"""Outputs that appear whole or not at all: write to a temporary sibling, then move into place."""

import contextlib
import json
import math
import os
import re
import shutil
import socket
import tempfile
from pathlib import Path

from quail.errors import QuailError


def cache_root() -> Path:
    """Where converted and trained models are kept between runs: `$QUAIL_CACHE`."""
    return Path(os.environ.get("QUAIL_CACHE") or Path.home() / ".cache" / "quail")


def check_output_dir(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse, before any work, an output folder that cannot be written or would be lost."""
    path = Path(path)
    if path.is_symlink():
        raise QuailError(f"output path {path} is a link: pass the folder it points to instead")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise QuailError(f"output folder {path} is not empty: choose another --out or --overwrite")
    _check_folder_place(path)
    return path


def _check_folder_place(path: Path) -> None:
    """An output folder's path: not a file, in a place that can be written."""
    if path.exists() and not path.is_dir():
        raise QuailError(f"output path {path} is a file: pass a folder path for --out")
    check_writable_place(path, "--out")


def check_output_file(path: str | os.PathLike, option: str) -> Path:
    """Refuse, before any work, an output file path that cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise QuailError(f"{option} {path} is a folder: pass a file path such as out.json")
    check_writable_place(path, option)
    return path


def check_writable_place(path: Path, option: str) -> None:
    existing = path.absolute().parent
    while not existing.exists():  # the folder the output will be created in, or its nearest
        existing = existing.parent  # ancestor that exists
    if not existing.is_dir():
        raise QuailError(f"{option} {path} is below the file {existing}: choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise QuailError(f"cannot write in {existing} (permission denied): choose another {option}")


@contextlib.contextmanager
def claimed(path: str | os.PathLike):
    """Hold the output folder `path` while a command writes it: a lock file beside it names the
    owner (pid@host), a second writer is refused at once, and the lock of a process that died
    on this machine is taken over. Under `accelerate launch`, the main process holds it."""
    path = Path(path).absolute()
    if os.environ.get("RANK", "0") != "0":
        yield path
        return
    _check_folder_place(path)
    lock = path.with_name(f".{path.name}.lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    mine = lock.with_name(f"{lock.name}.{os.getpid()}")
    mine.write_text(f"{os.getpid()}@{socket.gethostname()}\n", "utf-8")
    try:
        while True:
            try:
                os.link(mine, lock)  # appears whole, owner written, or fails if it exists
                break
            except FileExistsError:
                owner = lock.read_text("utf-8").strip() if lock.is_file() else ""
                if _alive(owner):
                    raise QuailError(
                        f"{path} is being written by process {owner} (lock {lock}): wait for "
                        "it, or delete the lock if that process is gone"
                    ) from None
                lock.unlink(missing_ok=True)  # its owner died: take the output over
    finally:
        mine.unlink()
    try:
        yield path
    finally:
        lock.unlink(missing_ok=True)


def _alive(owner: str) -> bool:
    """Whether the process `pid@host` of a lock file may still run (another host's: assume so)."""
    pid, at, host = owner.partition("@")
    if not (pid.isdigit() and at):
        return False  # not a lock quail wrote
    if host != socket.gethostname():
        return True  # another machine's process: cannot tell
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


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


def os_error(error: Exception) -> OSError | None:
    """The OSError behind an error: itself, or the one safetensors reports as text ("I/O error:
    No space left on device (os error 28)"), so a full disk reads the same from every writer."""
    if isinstance(error, OSError):
        return error
    found = re.search(r"I/O error: (.*) \(os error (\d+)\)", str(error))
    return OSError(int(found[2]), found[1]) if found else None


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

"""Ctrl-C and SIGTERM in the CLI: both raise `Interrupted`, except inside `deferred()`, where
a training loop holds the first one until its step ends, so the checkpoint it then writes is
whole. A second signal stops at once."""

import contextlib
import signal

from quail.errors import Interrupted

_deferring = False
_pending: int | None = None


def _handler(signum: int, frame) -> None:
    global _pending
    if _deferring and _pending is None:
        _pending = signum
        return
    raise Interrupted(signum)


def install() -> None:
    """Route SIGINT and SIGTERM to `Interrupted` (the CLI calls this; the library does not)."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, _handler)


@contextlib.contextmanager
def deferred():
    """While inside, the first signal is held for `pending()` to report at a safe point; one
    still held on the way out is raised then."""
    global _deferring, _pending
    _deferring, _pending = True, None
    try:
        yield
    finally:
        held, _deferring, _pending = _pending, False, None
    if held:
        raise Interrupted(held)


def pending() -> int | None:
    """The held signal's number, if one arrived."""
    return _pending

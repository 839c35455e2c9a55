"""What the CLI turns into one line and an exit code instead of a traceback.

QuailError is bad input (exit 2): the message names the problem and the fix. Interrupted is
Ctrl-C or SIGTERM (exit 130 or 143), raised once a run has kept what it can resume from.
Environment failures (a full disk, a permission the user lacks) are Python's own OSError and
MemoryError; the CLI names them in one line with exit 1.
"""

import signal


class QuailError(ValueError):
    """Bad input from the user. The CLI prints the message on one line and exits with code 2."""


class Interrupted(BaseException):
    """The user or the system asked the run to stop (SIGINT, SIGTERM). A BaseException, like
    KeyboardInterrupt, so that no `except Exception` swallows it."""

    def __init__(self, signum: int, note: str = ""):
        super().__init__(signum, note)
        self.signum, self.note = signum, note

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # the shell's convention: 130 for SIGINT, 143 for SIGTERM

    def __str__(self) -> str:
        name = signal.Signals(self.signum).name
        return f"stopped by {name}" + (f": {self.note}" if self.note else "")

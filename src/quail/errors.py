"""The one exception type users see: a one-line message naming the problem and the fix."""


class QuailError(ValueError):
    """Bad input from the user. The CLI prints the message on one line and exits with code 2."""

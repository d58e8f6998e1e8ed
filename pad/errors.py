"""One error type for every problem a user can fix: the CLI prints it in one line and exits 2."""


class PadError(Exception):
    """A user-fixable problem: bad input, bad params, missing file. Message says what and where."""

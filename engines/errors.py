"""The error type whose message a user sees as one line (the CLI prints it and exits non-zero)."""


class StylizeError(Exception):
    """A problem the user can fix (bad file, missing weights, bad argument). No traceback is shown."""

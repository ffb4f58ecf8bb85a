"""The one error type nnlab raises for bad input: the CLI prints it as one line."""


class NNLabError(Exception):
    """Bad input or an unusable resource; the message names the field or file and what
    was expected."""

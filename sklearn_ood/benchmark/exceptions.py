"""Errors of the benchmark command."""


class BenchmarkError(ValueError):
    """A user error (unknown set, bad path, bad option): reported without traceback."""

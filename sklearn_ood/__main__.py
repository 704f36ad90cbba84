"""``python -m sklearn_ood benchmark ...`` and the ``sklearn-ood`` console script."""

import sys


def main(argv=None):
    """Entry point of ``sklearn-ood``; returns the exit code."""
    from .benchmark.cli import main as cli_main

    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())

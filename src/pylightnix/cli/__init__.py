"""The ``pylightnix`` command line (extra ``cli``: click + rich).

One module per command, each thin over the library; :mod:`pylightnix.cli.app`
assembles them. The core never imports this package, and this module imports
click and rich only inside :func:`main`, so a missing extra gives a one-line
:class:`~pylightnix.errors.ExtraMissingError` message instead of a traceback.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from pylightnix.errors import ExtraMissingError, extra_hint

EXTRA_HINT = extra_hint("cli")


def require_cli_extra() -> None:
    """Raise unless click and rich can be imported.

    Raises:
        ExtraMissingError: the ``cli`` extra is not installed.
    """
    try:
        import click  # noqa: F401
        import rich  # noqa: F401
    except ImportError as e:
        raise ExtraMissingError(
            f"the pylightnix command line needs the 'cli' extra ({e.name} is missing): "
            f"{EXTRA_HINT}",
            extra="cli",
        ) from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the ``pylightnix`` command (and ``python -m pylightnix``).

    Exits 0 on success, 1 on an error, 2 on a usage error.
    """
    try:
        require_cli_extra()
    except ExtraMissingError as e:
        sys.stderr.write(f"pylightnix: {e}\n")
        sys.exit(1)
    from pylightnix.cli.app import run

    run(argv)

"""``python -m pylightnix``: the command line (needs the ``cli`` extra)."""

from __future__ import annotations

from pylightnix.cli import main

if __name__ == "__main__":
    main()

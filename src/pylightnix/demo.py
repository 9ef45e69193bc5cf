"""Demo pipeline (placeholder, replaced by the full demo)."""

from __future__ import annotations


def main() -> None:
    """Run the demo."""
    print("demo")


if __name__ == "__main__":
    main()

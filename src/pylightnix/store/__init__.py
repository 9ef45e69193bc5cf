"""The store layer: the only code that touches the store's files."""

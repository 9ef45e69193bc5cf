"""The realize layer: instantiate, realize, matchers, build helpers, scheduling."""

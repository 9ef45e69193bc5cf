"""Built-in stages: fetching outside files (:mod:`.fetch`) and small helpers (:mod:`.trivial`)."""

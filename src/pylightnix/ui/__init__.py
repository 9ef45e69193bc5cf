"""A local, read-only web view of a store (extra ``ui``; ``pylightnix ui``).

* :mod:`~pylightnix.ui.server`: the HTTP server (the standard library's
  ``ThreadingHTTPServer``), routing, the Host check and the security headers;
* :mod:`~pylightnix.ui.api`: the JSON records under ``/api/...`` (library
  records, paginated), which the pages and scripts use;
* :mod:`~pylightnix.ui.files`: request paths resolved inside a realization,
  never outside it, and the content types files are served with;
* :mod:`~pylightnix.ui.graph`: the dependency graph with status colours,
  laid out by Graphviz ``dot``;
* :mod:`~pylightnix.ui.pages`: the HTML pages (their scripts in ``static/``
  draw the records; plots use the ``plotly`` package's own ``plotly.min.js``,
  served from the installed package, so nothing is fetched from the internet).

Nothing here writes to the store.
"""

from __future__ import annotations

import importlib.util

from pylightnix.errors import ExtraMissingError

EXTRA_HINT = "pip install 'pylightnix-ng[ui]' (in a checkout: pip install -e '.[ui]')"


def require_ui_extra() -> None:
    """Raise unless the chart library of the ``ui`` extra can be imported.

    Raises:
        ExtraMissingError: the ``ui`` extra is not installed.
    """
    for mod in ("plotly",):
        if importlib.util.find_spec(mod) is None:
            raise ExtraMissingError(
                f"the pylightnix web view needs the 'ui' extra ({mod} is missing): {EXTRA_HINT}",
                extra="ui",
            )

"""The HTML pages of the web view: a shell each, which ``static/app.js`` fills from ``/api``.

A page carries what it shows as ``data-*`` attributes of its ``<body>``
(escaped); no inline script or style, so the Content-Security-Policy can
forbid both.
"""

from __future__ import annotations

from html import escape

from pylightnix.store.settings import StorageSettings

TITLES: dict[str, str] = {
    "home": "Stages",
    "dref": "Derivation",
    "rref": "Realization",
    "runs": "Runs",
    "graph": "Graph",
    "file": "File",
    "diff": "Diff",
    "store": "Store",
    "building": "Builds running",
    "buildlog": "Build log",
    "error": "Error",
}
"""Each page's kind and the title it starts with."""


def render_page(kind: str, S: StorageSettings, *, preload: str = "", **data: str) -> bytes:
    """The HTML of a page of ``kind`` with ``data`` for its script (``preload``: an API URL).

    >>> from pylightnix.store.settings import mkSS
    >>> b'data-ref="dref:x&lt;"' in render_page("dref", mkSS("/s"), ref="dref:x<")
    True
    """
    attrs = "".join(f' data-{k}="{escape(v, quote=True)}"' for k, v in sorted(data.items()))
    # The record the page's script will ask for, fetched while the script loads.
    early = (
        f'\n<link rel="preload" href="{escape(preload, quote=True)}" as="fetch" crossorigin>'
        if preload
        else ""
    )
    title = escape(TITLES[kind])
    text = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} - pylightnix</title>
<link rel="stylesheet" href="/static/app.css">{early}
<script src="/static/app.js" defer></script>
</head>
<body data-page="{escape(kind)}"{attrs}>
<header>
<a class="brand" href="/">pylightnix</a>
<nav><a href="/">stages</a> <a href="/store">store</a> <a href="/building">running builds</a></nav>
<span class="where" title="the store this view reads">{escape(S.storage)}</span>
</header>
<main id="main"><h1>{title}</h1><p class="muted" id="loading">loading&hellip;</p></main>
</body>
</html>
"""
    return text.encode("utf-8")

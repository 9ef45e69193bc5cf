"""``pylightnix ui``: serve the local, read-only web view of the store (extra ``ui``)."""

from __future__ import annotations

import webbrowser

import click

from pylightnix.cli.common import state
from pylightnix.store.layout import check_store
from pylightnix.store.settings import fsS, mkSS


@click.command("ui")
@click.option(
    "--store",
    "root",
    metavar="PATH",
    help="Store root folder (default: the group's --store, $PYLIGHTNIX_ROOT, ~/_pylightnix).",
)
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to listen on; anything but loopback exposes the store's files.",
)
@click.option("--port", default=0, type=click.IntRange(0, 65535), help="Port (default: any free).")
@click.option("--no-browser", is_flag=True, help="Do not open a web browser.")
@click.option("--verbose", is_flag=True, help="Log every request on stderr.")
def ui_cmd(root: str | None, host: str, port: int, no_browser: bool, verbose: bool) -> None:
    """Serve a read-only web view of the store: stages, runs and plots, graphs,
    files, build logs (live while building), diffs, size and GC roots.

    \b
    Examples:
      pylightnix ui
      pylightnix ui --store ./plx --port 8765 --no-browser
      pylightnix ui --host 0.0.0.0 --port 8765   # reachable from other machines

    Stop it with Ctrl-C. The JSON API under /api/... serves scripts too.
    """
    from pylightnix.ui import require_ui_extra

    require_ui_extra()
    from pylightnix.ui.server import is_loopback, make_server

    given = root or state().root
    S = mkSS(given) if given else fsS(None)
    check_store(S)
    srv = make_server(S, host=host, port=port, quiet=not verbose)
    if not is_loopback(host):
        click.echo(
            f"warning: serving on {host}, not on loopback: whoever reaches this address "
            "can read every file of the store",
            err=True,
        )
    click.echo(f"pylightnix ui: serving {S.storage} at {srv.url} (Ctrl-C to stop)")
    if not no_browser:
        webbrowser.open(srv.url)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        srv.server_close()

"""The web view in a real browser: Debian's headless Chromium driven by Playwright.

The browser is the system's ``/usr/bin/chromium`` (``scripts/setup.sh --test``
installs it); Playwright never downloads one. Screenshots go to the test's
temp folder and, when ``PYLIGHTNIX_UI_SHOTS`` names a folder, there too (that
is how docs/ui/*.png are made).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from pylightnix import fsinit, mkSS, runs
from tests.ui.conftest import Client, Swept, serve
from tests.ui.pixels import distinct_colours, png_rows
from tests.ui.slow import slow_build
from tests.ui.sweep import png

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium of the system, for the module's tests."""
    from playwright.sync_api import sync_playwright

    assert os.path.exists(CHROMIUM), f"{CHROMIUM} is missing: run scripts/setup.sh --test"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page that records console errors and uncaught exceptions."""
    ctx = browser.new_context(viewport={"width": 1100, "height": 760})
    pg = ctx.new_page()
    pg.problems = []
    pg.on("console", lambda m: pg.problems.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(str(e)))
    try:
        yield pg
    finally:
        ctx.close()


def _shot(page: Any, tmp_path: Any, name: str, min_colours: int) -> None:
    """Save a screenshot, check it is not blank, copy it to $PYLIGHTNIX_UI_SHOTS if set."""
    path = os.path.join(tmp_path, name)
    page.screenshot(path=path)
    with open(path, "rb") as f:
        data = f.read()
    assert distinct_colours(data) >= min_colours, f"{name} looks blank"
    dest = os.environ.get("PYLIGHTNIX_UI_SHOTS")
    if dest:
        shutil.copy(path, os.path.join(dest, name))


def _column(page: Any, label: str) -> list[str]:
    heads = page.locator("#runs thead th").all_inner_texts()
    i = next(k for k, h in enumerate(heads) if h.split(" ")[0] == label)
    return list(page.locator(f"#runs tbody tr td:nth-child({i + 1})").all_inner_texts())


def test_pixel_check_decodes_a_known_png() -> None:
    """The screenshot check decodes PNGs exactly (so a blank screenshot would be caught)."""
    data = png(3, 2, lambda x, y: (x * 100, y * 100, 7))
    assert png_rows(data) == (
        3,
        2,
        3,
        [bytes([0, 0, 7, 100, 0, 7, 200, 0, 7]), bytes([0, 100, 7, 100, 100, 7, 200, 100, 7])],
    )
    assert distinct_colours(data) == 6
    assert distinct_colours(png(5, 5, lambda x, y: (9, 9, 9))) == 1


def test_runs_page_sort_plot_click_and_log(
    page: Any, client: Client, swept: Swept, tmp_path: Any
) -> None:
    """Open a sweep's runs, sort by the metric, see the plot, click a point, a run, its log."""
    url = f"http://{client.host}"
    rs = runs("train", S=swept.S)
    page.goto(f"{url}/runs/train")
    page.wait_for_selector("body[data-table]")
    assert page.locator("#runs tbody tr").count() == len(rs) == 10
    assert page.locator("#runs tbody tr.is-chosen").count() == 5

    # Sort by the metric: ascending, then descending; the failed run (no metric) stays last.
    acc = sorted(r.metrics["accuracy"] for r in rs if "accuracy" in r.metrics)
    page.click("#runs th[data-col=accuracy]")
    assert _column(page, "accuracy") == [f"{a:g}" for a in acc] + [""]
    page.click("#runs th[data-col=accuracy]")
    assert _column(page, "accuracy") == [f"{a:g}" for a in reversed(acc)] + [""]
    assert page.locator("#runs th[data-col=accuracy]").inner_text() == "accuracy ▼"
    assert _column(page, "chosen")[0] == "★"

    # The plot: one point per run with the metric, the chosen ones drawn as a second trace.
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#plot .scatterlayer .point")
    assert page.locator("#plot .scatterlayer .point").count() == len(acc)
    assert page.locator("#plot .scatterlayer .trace").nth(1).locator(".point").count() == 5
    assert page.input_value("#plot-x") == "lr"
    page.set_viewport_size({"width": 1100, "height": 1000})
    _shot(page, tmp_path, "ui-runs.png", 200)
    page.set_viewport_size({"width": 1100, "height": 760})

    # Click the first chosen point: its run opens.
    chosen = [r for r in rs if r.chosen and "accuracy" in r.metrics]
    box = page.locator("#plot .scatterlayer .trace").nth(1).locator(".point").first.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.wait_for_url(f"{url}/rref/{chosen[0].rref}")
    page.go_back()
    page.wait_for_selector("body[data-table]")

    # Click a row (the run with the best accuracy), read its build log.
    best = max((r for r in rs if r.status == "ok"), key=lambda r: r.metrics["accuracy"])
    page.click(f"#runs tr[data-rref='{best.rref}'] td:nth-child(3)")
    page.wait_for_url(f"{url}/rref/{best.rref}")
    page.wait_for_selector("body[data-ready]")
    page.wait_for_selector("#log[data-complete]")
    lr = best.params["lr"]
    # One build made both seeds' outputs: its log tells of both.
    assert page.inner_text("#log") == "".join(
        f"training on 50 rows, lr={lr}, seed={seed}\n"
        f"epoch 0: loss {1.0 + lr:.4f}\nepoch 1: loss {0.5 + lr:.4f}\n"
        f"epoch 2: loss {1 / 3 + lr:.4f}\n"
        for seed in (0, 1)
    )
    assert page.locator("#files tbody tr").all_inner_texts()[0].split("\t")[0] == "accuracy.txt"
    _shot(page, tmp_path, "ui-run.png", 50)
    assert page.problems == []


def test_graph_home_and_file_pages(page: Any, client: Client, swept: Swept, tmp_path: Any) -> None:
    """The graph draws the dependency with status colours; stages list; an image file shows."""
    url = f"http://{client.host}"
    page.goto(f"{url}/graph/{swept.report}")
    page.wait_for_selector("body[data-ready]")
    assert page.locator(".graph svg g.node").count() == 7
    assert page.locator(".graph svg a").count() == 7
    assert page.locator(".graph svg g.edge").count() == 10
    _shot(page, tmp_path, "ui-graph.png", 20)

    page.goto(f"{url}/")
    page.wait_for_selector("body[data-ready]")
    assert page.locator("table.list tbody tr").count() == 7
    page.fill("input[type=search]", "data")
    page.press("input[type=search]", "Enter")
    page.wait_for_function("() => document.querySelectorAll('table.list tbody tr').length === 1")
    _shot(page, tmp_path, "ui-stages.png", 20)

    data = runs("dataset", S=swept.S)[0].rref
    page.goto(f"{url}/file/{data}/chart.png")
    page.wait_for_selector("img.preview")
    page.wait_for_function("() => document.querySelector('img.preview').naturalWidth === 64")
    page.goto(f"{url}/file/{data}/README.txt")
    page.wait_for_selector("body[data-ready]")
    assert page.inner_text("main pre") == "a toy data set\nsecond line <b>not bold</b>\n"
    assert page.locator("main pre b").count() == 0
    assert page.problems == []


def test_running_build_log_tails_live(page: Any, tmp_path: Any) -> None:
    """The running builds page lists a build in another process; its log grows on screen."""
    root = str(tmp_path / "plx")
    S = fsinit(mkSS(root))
    gate = str(tmp_path / "gate")
    with slow_build(root, gate) as child, serve(S) as c:
        page.goto(f"http://{c.host}/building")
        page.wait_for_selector("table.list a", timeout=60_000)
        assert page.inner_text("table.list a") == "slow"
        page.click("table.list a")
        page.wait_for_selector("#log-state:has-text('building')", timeout=60_000)
        page.wait_for_function("() => document.getElementById('log').textContent === 'step 1\\n'")
        with open(gate, "w"):
            pass
        page.wait_for_selector("#log-state:has-text('the build has ended')", timeout=60_000)
        child.communicate(timeout=60)
        assert child.returncode == 0
        assert page.inner_text("#log").startswith("step 1")
        assert page.problems == []

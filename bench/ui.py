"""The web view stays responsive: the runs page of a 1,000-run stage loads in < 300 ms.

1. A stage ``train`` with ``--runs`` runs (``--runs/2`` learning rates, two
   outputs each, metrics in ``metrics.json``) is realized; a web view serves
   the store on 127.0.0.1.
2. API: ``GET /api/runs/train`` (the record the runs page draws), median of 5.
3. Page: headless Chromium (the system's, through Playwright) opens
   ``/runs/train``; the time from the start of navigation until the runs
   table is on the page (the script's ``runs-table`` mark: HTML, script, the
   API answer and drawing 1,000 rows) is the page load; median of 5 loads
   after one warm-up. The time until the plot of all runs is drawn too.
4. Scale: ``--filler`` more derivations (instantiated, not realized) are
   added, and the first page of ``/api/stages`` is timed on that store.

Run: ``.venv/bin/python bench/ui.py [--runs 1000] [--filler 20000] [--dir /dev/shm]``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable

from pylightnix import (
    Build,
    DRef,
    build_cattrs,
    build_outpaths,
    build_wrapper,
    fsinit,
    instantiate,
    match_best,
    match_latest,
    mkdrv,
    mkSS,
    realize,
)
from pylightnix.ui import api
from pylightnix.ui.server import make_server

TARGET_MS = 300.0
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


def _train(b: Build) -> None:
    lr = build_cattrs(b).lr
    for seed, out in enumerate(build_outpaths(b)):
        acc = round(0.9 - abs(lr - 0.5) / 2 - seed / 100, 4)
        with open(os.path.join(out, "accuracy.txt"), "w") as f:
            f.write(str(acc))
        with open(os.path.join(out, "metrics.json"), "w") as f:
            json.dump({"accuracy": acc, "loss": round(1 - acc, 4)}, f)


def _sweep(n: int) -> list[DRef]:
    return [
        mkdrv(
            {"name": "train", "lr": round(i / n, 6), "epochs": 3},
            match_best("accuracy.txt"),
            build_wrapper(_train, nouts=2),
        )
        for i in range(n)
    ]


def _filler(n: int) -> list[DRef]:
    return [
        mkdrv({"name": f"f{i % 97}", "i": i}, match_latest(), build_wrapper(_train))
        for i in range(n)
    ]


def _ms(f: Callable[[], object], repeat: int = 5) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        f()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def _get(port: int, path: str) -> bytes:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        c.request("GET", path)
        r = c.getresponse()
        body = r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status} {body[:200]!r}")
        return body
    finally:
        c.close()


def _browser(url: str, repeat: int) -> tuple[float, float, float]:
    """(first load, median table time, median plot time) in ms, through Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            pg = b.new_page(viewport={"width": 1200, "height": 900})
            table, plot, fetched = [], [], []
            for _ in range(repeat + 1):
                pg.goto(url)
                pg.wait_for_selector("body[data-ready]", timeout=120_000)
                table.append(
                    pg.evaluate("() => performance.getEntriesByName('runs-table')[0].startTime")
                )
                fetched.append(
                    pg.evaluate(
                        "() => [performance.getEntriesByType('navigation')[0]"
                        ".domContentLoadedEventStart,"
                        " performance.getEntriesByName('runs-fetched')[0].startTime]"
                    )
                )
                plot.append(pg.evaluate("() => performance.now()"))
                if pg.locator("#runs tbody tr").count() != RUNS[0]:
                    raise RuntimeError("the runs table is incomplete")
            dom = statistics.median(x[0] for x in fetched[1:])
            got = statistics.median(x[1] for x in fetched[1:])
            print(
                f"browser, page parsed (DOMContentLoaded): {dom:.0f} ms; runs fetched: {got:.0f} ms"
            )
            return table[0], statistics.median(table[1:]), statistics.median(plot[1:])
        finally:
            b.close()


RUNS = [0]


def main() -> None:
    """Build the store, serve it, and print the timings with their ratio to the target."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=1000)
    ap.add_argument("--filler", type=int, default=20000)
    ap.add_argument("--dir", default=None)
    a = ap.parse_args()
    RUNS[0] = a.runs
    with tempfile.TemporaryDirectory(dir=a.dir) as d:
        S = fsinit(mkSS(os.path.join(d, "plx")))
        t0 = time.perf_counter()
        realize(instantiate(_sweep, a.runs // 2, S=S))
        print(f"store: {a.runs} runs of 'train' realized in {time.perf_counter() - t0:.1f} s")
        srv = make_server(S, host="127.0.0.1", port=0)
        th = threading.Thread(target=srv.serve_forever, daemon=True)
        th.start()
        try:
            cold = _ms(lambda: api.runs_record("train", S))
            print(f"runs record of {a.runs} runs computed (no reuse): {cold:.1f} ms (median of 5)")
            # The server reuses a record once its derivation folders are 2 s old (api.runs_key).
            time.sleep(2.1)
            got = json.loads(_get(srv.port, "/api/runs/train"))
            assert len(got["runs"]) == a.runs, len(got["runs"])
            api_ms = _ms(lambda: _get(srv.port, "/api/runs/train"))
            html_ms = _ms(lambda: _get(srv.port, "/runs/train"))
            print(f"GET /api/runs/train ({a.runs} runs, reused): {api_ms:.1f} ms (median of 5)")
            print(f"GET /runs/train (the page's HTML): {html_ms:.2f} ms")
            first, table, plot = _browser(f"http://127.0.0.1:{srv.port}/runs/train", 5)
            print(
                f"browser, runs table on the page: first load {first:.0f} ms; "
                f"then median {table:.0f} ms (target {TARGET_MS:.0f} ms, ratio "
                f"{table / TARGET_MS:.2f})"
            )
            print(f"browser, plot of all runs drawn: median {plot:.0f} ms")
            if a.filler:
                t0 = time.perf_counter()
                instantiate(_filler, a.filler, S=S)
                print(
                    f"store: {a.filler} more derivations instantiated in "
                    f"{time.perf_counter() - t0:.1f} s"
                )
                n = a.filler + a.runs // 2
                cold = _ms(lambda: api.stages(S, limit=100))
                time.sleep(2.1)  # the server reuses its stage index once the folder is 2 s old
                ms = _ms(lambda: _get(srv.port, "/api/stages?limit=100"))
                ms_q = _ms(lambda: _get(srv.port, "/api/stages?limit=100&q=f42"))
                print(
                    f"stage list, first page, on {n} derivations: {cold:.1f} ms listed anew; "
                    f"GET /api/stages?limit=100 {ms:.1f} ms, filtered by name {ms_q:.1f} ms "
                    "(index reused)"
                )
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == "__main__":
    main()

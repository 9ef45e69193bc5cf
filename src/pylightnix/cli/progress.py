"""Rendering of realize progress: a live rich display on a terminal, plain lines otherwise.

The view writes to its own duplicate of the stderr descriptor, taken before
any build starts: while a build runs, descriptors 1 and 2 point into the
build's log (fd-level capture), and the display must not end up there.
"""

from __future__ import annotations

import os
import time
from types import TracebackType
from typing import IO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text

from pylightnix.cli.common import human_size
from pylightnix.progress import ProgressEvent

# Plain mode prints a download line at most this often (seconds), plus the final one.
_PLAIN_DOWNLOAD_EVERY = 1.0


class ProgressView:
    """A progress hook (``realize(progress=view)``) that shows stages done, to
    build and reused, the current stage, elapsed time and downloads."""

    def __init__(self, *, live: bool | None = None, to_build: int | None = None) -> None:
        self._file: IO[str] = os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8")
        self.live = self._file.isatty() if live is None else live
        self.console = Console(
            file=self._file,
            force_terminal=self.live,
            no_color=not self.live,
            highlight=False,
            width=None if self.live else 250,
        )
        self.t0 = time.monotonic()
        self.total = 0
        self.done = 0
        self.built = 0
        self.reused = 0
        self.to_build = to_build
        self.current: dict[str, float] = {}
        self.downloads: dict[str, tuple[int, int, float]] = {}
        self._last_dl_print: dict[str, float] = {}
        self._live: Live | None = None

    def __enter__(self) -> ProgressView:
        if self.live:
            self._live = Live(
                self,
                console=self.console,
                refresh_per_second=8,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.stop()
        self._file.close()

    def elapsed(self) -> float:
        """Seconds since the view was made."""
        return time.monotonic() - self.t0

    def _line(self, text: str) -> None:
        self.console.print(f"[{self.elapsed():6.1f}s] {text}", markup=False)

    def __call__(self, e: ProgressEvent) -> None:
        k = e.kind
        if k == "plan":
            self.total = e.total
            todo = f", {self.to_build} to build" if self.to_build is not None else ""
            self._line(f"plan   {e.total} stages{todo}")
        elif k == "check":
            self.current[e.name] = time.monotonic()
        elif k == "reuse":
            self.done += 1
            self.reused += 1
            self.current.pop(e.name, None)
            if not self.live:
                self._line(f"reuse  {e.name}  {' '.join(e.rrefs)}")
        elif k == "build":
            self.current[e.name] = time.monotonic()
            self._line(f"build  {e.name}")
        elif k == "running":
            self._line(f"run    {e.name}  on {e.extra.get('worker', '?')}")
        elif k == "built":
            self.done += 1
            self.built += 1
            self.current.pop(e.name, None)
            self.downloads.pop(e.name, None)
            self._line(f"built  {e.name}  {' '.join(e.rrefs)}")
        elif k == "plan-build":
            self.done += 1
            self.current.pop(e.name, None)
            self._line(f"would build  {e.name}  ({e.extra.get('reason', '')})")
        elif k == "fail":
            self.current.pop(e.name, None)
            self._line(f"FAIL   {e.name}: {e.extra.get('error', '')}")
        elif k in ("download", "transfer"):
            self._download(e)
        elif k == "explain":
            self._line(f"{e.extra['decision']:<6} {e.name}: {e.extra['reason']}")
        elif k == "done":
            self._line(
                f"done   {e.total} stages: {self.built} built, {self.reused} reused "
                f"in {e.elapsed:.1f}s"
            )

    def _download(self, e: ProgressEvent) -> None:
        rate = float(e.extra.get("rate", 0.0))
        self.downloads[e.name] = (e.done, e.total, rate)
        if self.live:
            return
        now = time.monotonic()
        final = bool(e.total) and e.done >= e.total
        if final or now - self._last_dl_print.get(e.name, 0.0) >= _PLAIN_DOWNLOAD_EVERY:
            self._last_dl_print[e.name] = now
            verb = str(e.extra.get("direction", "fetch"))
            self._line(
                f"{verb:<6} {e.name}  {_bytes(e.done, e.total)} at {human_size(int(rate))}/s"
            )

    def __rich__(self) -> RenderableType:
        now = time.monotonic()
        todo = f"/{self.to_build}" if self.to_build is not None else ""
        parts: list[RenderableType] = [
            Text(
                f"stages {self.done}/{self.total} · built {self.built}{todo} · "
                f"reused {self.reused} · elapsed {now - self.t0:.1f}s",
                style="bold",
            )
        ]
        for name, since in list(self.current.items()):
            parts.append(Text(f"  running {name} ({now - since:.1f}s)"))
        for name, (done, total, rate) in list(self.downloads.items()):
            parts.append(
                Text(f"  fetch {name}: {_bytes(done, total)} at {human_size(int(rate))}/s")
            )
        return Group(*parts)


def _bytes(done: int, total: int) -> str:
    """``1.0 MiB / 4.0 MiB (25%)``, or just the amount when the total is unknown.

    >>> _bytes(2**20, 2**22)
    '1.0 MiB / 4.0 MiB (25%)'
    >>> _bytes(512, 0)
    '512 B'
    """
    if not total:
        return human_size(done)
    return f"{human_size(done)} / {human_size(total)} ({100 * done // total}%)"

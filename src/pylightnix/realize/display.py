"""The progress display of a realize: live on a terminal, plain lines otherwise.

``realize(..., progress=True)`` (or ``$PYLIGHTNIX_PROGRESS=1``) and
``pylightnix realize`` show the same :class:`ProgressDisplay`:

* on a terminal (stderr is a tty) with ``rich`` installed (the ``cli``
  extra): a live block with the stage counts, each running build with its
  elapsed time (and, after ``LIVE_TAIL_AFTER`` seconds, the last line of its
  build log), and downloads with bytes and rate;
* in a Jupyter notebook: plain lines in the cell's output (the notebook
  stream taken when the display starts; no HTML widgets);
* otherwise (a pipe, a file, a CI log, or no ``rich``): plain lines on
  stderr, downloads throttled to one line a second, and for a build running
  longer than ``heartbeat`` seconds a line every ``heartbeat`` seconds with
  its elapsed time and last log line.

The display writes to its own duplicate of the stderr descriptor, taken
before any build starts: while a build runs, descriptors 1 and 2 point into
the build's log (fd-level capture), and the display must not end up there.

Stages of the same name (a sweep) are told apart by the config keys in which
they differ (``train lr=0.3``), else by a short hash (:func:`stage_labels`).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from types import TracebackType
from typing import IO, Any

from pylightnix.config import config_dict, is_refpath
from pylightnix.errors import RealizeError
from pylightnix.progress import ProgressEvent, ProgressHook, human_size
from pylightnix.realize.buildlog import log_tail
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.refs import dref_hash, dref_name, is_dref
from pylightnix.types import DRef

PROGRESS_ENV = "PYLIGHTNIX_PROGRESS"
"""Set to 1 to make ``realize(...)`` show progress without ``progress=True``."""

# Plain mode prints a download line at most this often (seconds), plus the final one.
_PLAIN_DOWNLOAD_EVERY = 1.0
HEARTBEAT = 10.0
"""Default seconds between plain lines about a build that is still running."""
LIVE_TAIL_AFTER = 2.0
"""Seconds after which the live display shows a running build's last log line."""
_LABEL_KEYS = 2
_LAST_LINE_CHARS = 100


def progress_default() -> bool:
    """Whether ``$PYLIGHTNIX_PROGRESS`` asks for a progress display."""
    return os.environ.get(PROGRESS_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def in_notebook() -> bool:
    """Whether this process is a Jupyter kernel (IPython's ZMQ shell)."""
    ipy = sys.modules.get("IPython")
    get = getattr(ipy, "get_ipython", None) if ipy is not None else None
    shell = get() if callable(get) else None
    return type(shell).__name__ == "ZMQInteractiveShell"


def _rich_available() -> bool:
    try:
        import rich  # noqa: F401
    except ImportError:
        return False
    return True


def _short(v: Any) -> str:
    if is_dref(v):
        return str(dref_name(DRef(v)))
    if is_refpath(v):
        return "/".join([str(dref_name(DRef(v[0]))), *v[1:]])
    return v if isinstance(v, str) else json.dumps(v, sort_keys=True)


def _flat(d: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if k == "name" or k.startswith("__"):
            continue
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def stage_labels(derivations: Iterable[Derivation]) -> dict[DRef, str]:
    """Display labels: the name, or for same-named stages the name and what sets them apart.

    The config keys whose values differ within a group of same-named stages
    label each (``train lr=0.3``, at most two keys); stages that differ only in
    dependencies or hidden keys get ``train@1a2b3c`` (the DRef's hash).
    """
    drvs = list(derivations)
    groups: dict[str, list[Derivation]] = {}
    for d in drvs:
        groups.setdefault(str(dref_name(d.dref)), []).append(d)
    out: dict[DRef, str] = {}
    for name, group in groups.items():
        if len(group) == 1:
            out[group[0].dref] = name
            continue
        flats = {d.dref: _flat(config_dict(d.config)) for d in group}
        keys = sorted({k for f in flats.values() for k in f})
        differ = [
            k
            for k in keys
            if len({json.dumps(f.get(k), sort_keys=True) for f in flats.values()}) > 1
        ]
        shown = {
            d.dref: " ".join(f"{k}={_short(flats[d.dref].get(k))}" for k in differ[:_LABEL_KEYS])
            for d in group
        }
        counts: dict[str, int] = {}
        for v in shown.values():
            counts[v] = counts.get(v, 0) + 1
        for d in group:
            v = shown[d.dref]
            label = f"{name} {v}" if v else name
            # A label that still names several stages (or hides keys) gets the DRef's hash too.
            if not v or counts[v] > 1 or len(differ) > _LABEL_KEYS:
                label += f"@{str(dref_hash(d.dref))[:6]}"
            out[d.dref] = label
    return out


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


def _last_line(path: str | None) -> str:
    if path is None:
        return ""
    lines = [x for x in log_tail(path, 5) if x.strip()]
    line = lines[-1].strip() if lines else ""
    return line if len(line) <= _LAST_LINE_CHARS else line[: _LAST_LINE_CHARS - 1] + "…"


class ProgressDisplay:
    """A progress hook (``realize(progress=display)``) showing stages done, to build and
    reused, running builds (elapsed time, last log line) and downloads.

    Args:
        live: a live display (``None``: when stderr is a terminal and ``rich``
            is installed).
        to_build: how many stages will be built, if known (from :func:`explain`).
        labels: display labels by DRef (:func:`stage_labels`).
        stream: write plain lines there instead of a duplicate of stderr
            (a notebook's output stream).
        heartbeat: seconds between plain lines about a build still running
            (``0``: none).
    """

    def __init__(
        self,
        *,
        live: bool | None = None,
        to_build: int | None = None,
        labels: Mapping[DRef, str] | None = None,
        stream: IO[str] | None = None,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self._own = stream is None
        self._file: IO[str] = (
            os.fdopen(os.dup(2), "w", buffering=1, encoding="utf-8") if stream is None else stream
        )
        tty = self._own and self._file.isatty()
        self.live = (tty and _rich_available()) if live is None else live
        self.console: Any = None
        if self.live:
            from rich.console import Console

            self.console = Console(file=self._file, force_terminal=True, highlight=False)
        self.labels: dict[DRef, str] = dict(labels or {})
        self.t0 = time.monotonic()
        self.total = 0
        self.done = 0
        self.built = 0
        self.reused = 0
        self.failed = 0
        self.to_build = to_build
        self.heartbeat = heartbeat
        self.current: dict[str, float] = {}
        self.logs: dict[str, str] = {}
        self.downloads: dict[str, tuple[int, int, float, str]] = {}
        self._last_dl_print: dict[str, float] = {}
        self._live: Any = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    def __enter__(self) -> ProgressDisplay:
        if self.live:
            from rich.live import Live

            self._live = Live(
                self,
                console=self.console,
                refresh_per_second=8,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        elif self.heartbeat > 0:
            self._beat = threading.Thread(
                target=self._heartbeat, name="pylightnix-progress", daemon=True
            )
            self._beat.start()
        return self

    def __exit__(
        self,
        et: type[BaseException] | None,
        ev: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._beat is not None:
            self._beat.join()
        if self._live is not None:
            self._live.stop()
        if self._own:
            self._file.close()
        else:
            self._file.flush()

    def elapsed(self) -> float:
        """Seconds since the display was made."""
        return time.monotonic() - self.t0

    def _line(self, text: str) -> None:
        line = f"[{self.elapsed():6.1f}s] {text}"
        with self._lock:
            if self.console is not None:
                self.console.print(line, markup=False)
            else:
                self._file.write(line + "\n")
                self._file.flush()

    def _heartbeat(self) -> None:
        last: dict[str, float] = {}
        while not self._stop.wait(min(1.0, self.heartbeat)):
            now = time.monotonic()
            for label, since in list(self.current.items()):
                if label not in self.logs:
                    continue  # checking, not building
                if now - since >= self.heartbeat and now - last.get(label, since) >= self.heartbeat:
                    last[label] = now
                    tail = _last_line(self.logs.get(label))
                    self._line(
                        f"still  {label} ({now - since:.0f}s)" + (f": {tail}" if tail else "")
                    )

    def label(self, e: ProgressEvent) -> str:
        """How the display names the stage of an event."""
        return self.labels.get(e.dref, e.name) if e.dref is not None else e.name

    def __call__(self, e: ProgressEvent) -> None:
        k = e.kind
        name = self.label(e)
        if k == "plan":
            self.total = e.total
            todo = f", {self.to_build} to build" if self.to_build is not None else ""
            self._line(f"plan   {e.total} stages{todo}")
        elif k == "check":
            self.current[name] = time.monotonic()
        elif k == "reuse":
            self.done += 1
            self.reused += 1
            self._finish(name)
            if not self.live:
                self._line(f"reuse  {name}  {' '.join(e.rrefs)}")
        elif k == "build":
            self.current[name] = time.monotonic()
            self._line(f"build  {name}")
        elif k == "log":
            self.logs[name] = str(e.extra.get("path", ""))
        elif k == "built":
            self.done += 1
            self.built += 1
            self._finish(name)
            self._line(f"built  {name}  {' '.join(e.rrefs)}")
        elif k == "plan-build":
            self.done += 1
            self._finish(name)
            self._line(f"would build  {name}  ({e.extra.get('reason', '')})")
        elif k == "fail":
            self.failed += 1
            self._finish(name)
            self._line(f"FAIL   {name}: {e.extra.get('error', '')}")
        elif k == "running":
            self._line(f"run    {name}  on {e.extra.get('worker', '?')}")
        elif k in ("download", "transfer"):
            self._download(e, name)
        elif k == "explain":
            self._line(f"{e.extra['decision']:<6} {name}: {e.extra['reason']}")
        elif k == "done":
            bad = f", {self.failed} failed" if self.failed else ""
            self._line(
                f"done   {e.total} stages: {self.built} built, {self.reused} reused{bad} "
                f"in {e.elapsed:.1f}s"
            )

    def _finish(self, name: str) -> None:
        self.current.pop(name, None)
        self.logs.pop(name, None)
        self.downloads.pop(name, None)

    def _download(self, e: ProgressEvent, name: str) -> None:
        rate = float(e.extra.get("rate", 0.0))
        verb = str(e.extra.get("direction", "fetch"))
        self.downloads[name] = (e.done, e.total, rate, verb)
        if self.live:
            return
        now = time.monotonic()
        final = bool(e.total) and e.done >= e.total
        if final or now - self._last_dl_print.get(name, 0.0) >= _PLAIN_DOWNLOAD_EVERY:
            self._last_dl_print[name] = now
            self._line(f"{verb:<6} {name}  {_bytes(e.done, e.total)} at {human_size(int(rate))}/s")

    def __rich__(self) -> Any:
        from rich.console import Group
        from rich.text import Text

        now = time.monotonic()
        todo = f"/{self.to_build}" if self.to_build is not None else ""
        bad = f" · failed {self.failed}" if self.failed else ""
        parts: list[Any] = [
            Text(
                f"stages {self.done}/{self.total} · built {self.built}{todo} · "
                f"reused {self.reused}{bad} · elapsed {now - self.t0:.1f}s",
                style="bold",
            )
        ]
        for name, since in list(self.current.items()):
            # Short builds stay one quiet row; a long one shows that it is alive.
            tail = _last_line(self.logs.get(name)) if now - since >= LIVE_TAIL_AFTER else ""
            parts.append(
                Text(f"  running {name} ({now - since:.1f}s)" + (f"  │ {tail}" if tail else ""))
            )
        for name, (done, total, rate, verb) in list(self.downloads.items()):
            parts.append(
                Text(f"  {verb} {name}: {_bytes(done, total)} at {human_size(int(rate))}/s")
            )
        return Group(*parts)


@contextlib.contextmanager
def progress_for(progress: Any, closure: Closure) -> Iterator[ProgressHook | None]:
    """The progress hook of a realize call's ``progress=`` argument, for the call's duration.

    ``None`` follows ``$PYLIGHTNIX_PROGRESS``; ``True`` shows a
    :class:`ProgressDisplay` (see the module docstring); ``False`` none; a
    callable is the hook itself.

    Raises:
        RealizeError: ``progress`` is none of those.
    """
    if progress is None:
        progress = progress_default()
    if progress is False:
        yield None
    elif progress is True:
        labels = stage_labels(closure.derivations)
        stream = sys.stdout if in_notebook() else None
        with ProgressDisplay(labels=labels, stream=stream) as d:
            yield d
    elif callable(progress):
        yield progress
    else:
        raise RealizeError(
            f"progress={progress!r}: pass True (show a display), False, or a callable "
            "receiving ProgressEvent records"
        )

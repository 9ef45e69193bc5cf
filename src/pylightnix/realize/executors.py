"""Where build tasks run: threads of the coordinator, another process, or Dask.

:func:`open_backend` wraps what ``realize(jobs=..., executor=...)`` got into a
:class:`Backend` with one ``submit`` returning ``concurrent.futures`` futures:

* ``jobs=N`` or a ``ThreadPoolExecutor``: threads of this process; tasks get
  the realizer object itself and the caller's context variables;
* any other ``concurrent.futures.Executor`` (a ``ProcessPoolExecutor``...):
  another process; the realizer crosses as a pickle made here
  (:func:`dumps_realizer`), so that an unpicklable one is refused with the
  stage's name before anything runs;
* a ``distributed.Client``: Dask (``realize/dask.py``).

A backend in another process first checks, once, that its workers see the
coordinator's store (:meth:`Backend.probe`), right before the first build
task: a realize that builds nothing submits nothing.
"""

from __future__ import annotations

import contextvars
import io
import os
import pickle
import secrets
import sys
from collections.abc import Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from typing import Any

from pylightnix.errors import ClusterError, ExtraMissingError
from pylightnix.realize.tasks import probe_task
from pylightnix.refs import dref_name
from pylightnix.store.fsops import mkdtemp_in, remove_tree
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, Realizer


class _MainReferenceError(Exception):
    """Plain pickle would refer to ``__main__``, which a worker process lacks."""


BY_VALUE = "__pylightnix_pickle_by_value__"
"""A module with this attribute set true (a stage file the CLI loaded by path, which
workers cannot import by name) has its functions pickled by value, like ``__main__``."""


def pickled_by_value(module: str) -> bool:
    """Tell whether code of ``module`` must cross to workers by value (cloudpickle)."""
    return module == "__main__" or bool(getattr(sys.modules.get(module), BY_VALUE, False))


class _StrictPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, type | Callable) and pickled_by_value(getattr(obj, "__module__", "")):
            raise _MainReferenceError
        return NotImplemented


def dumps_realizer(realizer: Realizer, dref: DRef) -> bytes:
    """Pickle a realizer for another process: plain pickle, else cloudpickle.

    Plain pickle stores functions and classes by reference (module and name),
    which fails for closures and lambdas and, for objects of ``__main__``,
    works here but not in a worker; cloudpickle stores those by value.

    Raises:
        ClusterError: neither can pickle it (names the stage and the cause).
        ExtraMissingError: cloudpickle is needed but not installed.
    """
    buf = io.BytesIO()
    try:
        _StrictPickler(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(realizer)
        return buf.getvalue()
    except (_MainReferenceError, pickle.PicklingError, AttributeError, TypeError):
        pass
    try:
        import cloudpickle  # type: ignore[import-untyped,unused-ignore]
    except ImportError as e:
        raise ExtraMissingError(
            f"the realizer {realizer!r} of stage '{dref_name(dref)}' ({dref}) needs "
            "cloudpickle to cross to another process (a closure, a lambda or code of "
            "__main__): pip install 'pylightnix-ng[dask]'"
            " (in a checkout: pip install -e '.[dask]')",
            extra="dask",
        ) from e
    for m in list(sys.modules.values()):
        if getattr(m, BY_VALUE, False):
            cloudpickle.register_pickle_by_value(m)
    try:
        return bytes(cloudpickle.dumps(realizer, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception as e:
        raise ClusterError(
            f"the realizer {realizer!r} of stage '{dref_name(dref)}' ({dref}) cannot be "
            f"pickled to run in another process ({type(e).__name__}: {e}): make it a "
            "module-level function or a small class, or realize with jobs=N (threads)",
            dref=dref,
        ) from e


class Backend:
    """Runs tasks; the base class runs them on threads of this process.

    Attributes:
        in_process: tasks run in this process (no pickling, shared context).
        name: how progress and errors name the backend.
    """

    in_process = True
    name = "threads"

    def __init__(self, executor: Executor, own: bool) -> None:
        self.executor = executor
        self.own = own
        self.probed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.executor.submit(contextvars.copy_context().run, fn, *args)

    def probe(self, S: StorageSettings) -> None:
        """Check once that the workers see the store ``S`` (no-op in process)."""

    def close(self) -> None:
        if self.own:
            self.executor.shutdown(wait=True)


class ProcessBackend(Backend):
    """Any executor whose tasks may run in another process."""

    in_process = False

    def __init__(self, executor: Executor, own: bool = False) -> None:
        super().__init__(executor, own)
        self.name = type(executor).__name__

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.executor.submit(fn, *args)

    def probe(self, S: StorageSettings) -> None:
        if self.probed:
            return
        with nonce_file(S) as (path, nonce):
            problems = self.run_probe(path, nonce)
        if problems:
            raise store_not_shared(S, problems)
        self.probed = True

    def run_probe(self, path: str, nonce: str) -> list[str]:
        res = self.executor.submit(probe_task, path, nonce).result()
        return [res] if res is not None else []


class nonce_file:  # noqa: N801 - a context manager used like a function
    """A file with a random nonce in the store's temporary space, for probes."""

    def __init__(self, S: StorageSettings) -> None:
        self.S = S
        self.folder = ""

    def __enter__(self) -> tuple[str, str]:
        self.folder = mkdtemp_in(self.S.tmpdir, "probe")
        nonce = secrets.token_hex(16)
        path = os.path.join(self.folder, "nonce")
        with open(path, "w", encoding="utf-8") as f:
            f.write(nonce)
        return path, nonce

    def __exit__(self, *exc: object) -> None:
        remove_tree(self.folder)


def store_not_shared(S: StorageSettings, problems: list[str]) -> ClusterError:
    """The error for workers that do not see the coordinator's store."""
    lines = "\n".join(f"  {p}" for p in problems)
    return ClusterError(
        f"the workers do not see the store {S.root} of this process:\n{lines}\n"
        "mount the store at the same path on every worker (a shared filesystem), "
        "or pass remote=URL to exchange realizations through a remote cache",
        path=S.root,
    )


def is_dask_client(executor: Any) -> bool:
    """Tell whether ``executor`` is a ``distributed.Client`` (without importing Dask)."""
    return any(
        c.__module__.startswith("distributed") and c.__name__ == "Client"
        for c in type(executor).__mro__
    )


def open_backend(executor: Any, jobs: int) -> Backend:
    """The backend for ``realize(jobs=..., executor=...)``.

    Raises:
        ClusterError: ``executor`` is neither an Executor nor a Dask Client.
    """
    if executor is None:
        return Backend(ThreadPoolExecutor(max_workers=jobs), own=True)
    if isinstance(executor, ThreadPoolExecutor):
        return Backend(executor, own=False)
    if isinstance(executor, Executor):
        return ProcessBackend(executor)
    if is_dask_client(executor):
        from pylightnix.realize.dask import DaskBackend

        return DaskBackend(executor)
    raise ClusterError(
        f"realize(executor={executor!r}): expected a concurrent.futures.Executor or a "
        "distributed.Client"
    )

"""Dask as the engine: build tasks on a ``distributed.Client``'s workers.

``realize(closure, executor=client)`` runs only builds on the cluster (the
coordinator decides reuse, see ``scheduler.py``). This module holds what is
Dask-specific; ``dask``/``distributed`` are imported lazily (the ``dask`` extra):

* tasks are submitted with ``pure=False`` (two builds of one derivation are two
  tasks, never merged by key) through the client's ``concurrent.futures``
  executor, so the scheduler treats Dask like any executor;
* the shared-store probe runs on every worker connected at that moment
  (``client.run``); workers that join later are not probed;
* a task announces on the event topic ``pylightnix-progress`` which worker
  runs it; the coordinator turns that into ``"running"`` progress events;
* :func:`connect` makes a client for the CLI: a scheduler address, or
  ``local:N`` for a ``LocalCluster`` of N single-threaded worker processes.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from typing import Any

from pylightnix.errors import ClusterError, ExtraMissingError
from pylightnix.realize.executors import Backend
from pylightnix.realize.tasks import PROGRESS_TOPIC, probe_store
from pylightnix.store.settings import StorageSettings


def require_distributed() -> Any:
    """The ``distributed`` module, or an error saying how to install it."""
    try:
        import distributed
    except ImportError as e:
        raise ExtraMissingError(
            "Dask is not installed: pip install 'pylightnix-ng[dask]'"
            " (in a checkout: pip install -e '.[dask]')",
            extra="dask",
        ) from e
    return distributed


class DaskBackend(Backend):
    """Build tasks on the workers of a ``distributed.Client``."""

    in_process = False

    def __init__(self, client: Any) -> None:
        super().__init__(client.get_executor(pure=False), own=False)
        self.client = client
        self.name = f"Dask {client.scheduler.address}"

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        return self.executor.submit(fn, *args)

    def probe(self, S: StorageSettings) -> None:
        from pylightnix.realize.executors import nonce_file, store_not_shared

        if self.probed:
            return
        workers = self.client.scheduler_info().get("workers", {})
        if not workers:
            raise ClusterError(
                f"the Dask cluster at {self.client.scheduler.address} has no workers: "
                "start some (dask worker ADDRESS) or use --dask local:N",
                path=S.root,
            )
        with nonce_file(S) as (path, nonce):
            answers = self.client.run(probe_store, path, nonce)
        problems = [f"{w}: {p}" for w, p in answers.items() if p is not None]
        if problems:
            raise store_not_shared(S, sorted(problems))
        self.probed = True

    @contextlib.contextmanager
    def running_events(self, on_event: Callable[[dict[str, Any]], None]) -> Iterator[None]:
        """Within the block, call ``on_event`` with what build tasks announce."""

        def handler(event: tuple[float, dict[str, Any]]) -> None:
            on_event(event[1])

        self.client.subscribe_topic(PROGRESS_TOPIC, handler)
        try:
            yield
        finally:
            self.client.unsubscribe_topic(PROGRESS_TOPIC)


def connect(address: str) -> Any:
    """A ``distributed.Client`` for a scheduler address or ``local:N``.

    ``local:N`` starts a ``LocalCluster`` of N worker processes with one thread
    each (so that builds capture their logs at the file-descriptor level) on
    127.0.0.1 (the dashboard on a free port); closing the client closes the cluster.

    Raises:
        ClusterError: ``local:N`` with N not a positive int, or no scheduler answers.
        ExtraMissingError: Dask is not installed.
    """
    distributed = require_distributed()
    if address.startswith("local:"):
        n = address[len("local:") :]
        if not n.isdigit() or int(n) < 1:
            raise ClusterError(
                f"--dask {address!r}: expected local:N with N a positive number of "
                "worker processes, e.g. local:4"
            )
        cluster = distributed.LocalCluster(
            n_workers=int(n),
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        )
        client = distributed.Client(cluster)
        client._pylightnix_cluster = cluster
        return client
    try:
        return distributed.Client(address, timeout=30)
    except OSError as e:
        raise ClusterError(
            f"cannot reach the Dask scheduler at {address!r} ({e}): check the address "
            "(tcp://HOST:8786) and that `dask scheduler` runs there"
        ) from e


def disconnect(client: Any) -> None:
    """Close a client made by :func:`connect` (and its local cluster)."""
    cluster = getattr(client, "_pylightnix_cluster", None)
    client.close()
    if cluster is not None:
        cluster.close()


@contextlib.contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """Within the block, a client made by :func:`connect` (closed at the end)."""
    client = connect(address)
    try:
        yield client
    finally:
        disconnect(client)

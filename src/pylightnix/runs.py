"""Runs: the realizations of a stage as experiment records (parameters, metrics, status).

A *run* is one realization of a derivation, successful or failed
(``realizeE``/``mkdrvE``). :func:`runs` lists every run of a stage name, a
DRef or an instantiated closure, oldest build first, each as a :class:`Run`
holding its config parameters (flattened), its metrics, its status and
whether its derivation's matcher picks it::

    for r in runs("train"):
        print(r.params["lr"], r.metrics.get("accuracy"), r.status, r.chosen)

(``docs/ml-pipeline.md`` runs this on a real sweep in the tests.)

Where the metrics come from, first match wins:

1. ``metrics.json`` at the top of the realization: its numbers, nested keys
   flattened as ``"a.b"``;
2. the file the derivation's ``match_best`` ranks by (``"accuracy.txt"`` gives
   the metric ``"accuracy"``) or, for a closure, a ``match_best`` key
   function (the metric ``"score"``);
3. the JSON file named by ``metrics_file=`` (its top-level numbers).

Which runs are *chosen*: given a closure, its matchers are asked, in each
run's own context. Given only a name or a DRef (the command line has no
Python stage), realize's *chosen records* answer: each realize writes down
what the matcher picked per derivation and context (``store/chosen.py``,
documented in docs/store-format.md), and a run is chosen when the record of
its context names it. A store realized before records existed has none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pylightnix.config import is_refpath, selfref
from pylightnix.errors import MatcherError, OptionError, RefError
from pylightnix.hashing import context_hash
from pylightnix.realize.failures import rref_failure
from pylightnix.realize.matchers import FileKey, Match
from pylightnix.realize.registry import Closure, Derivation
from pylightnix.refs import dref_name, is_dref, is_name
from pylightnix.store.chosen import chosen_records
from pylightnix.store.layout import CHASH_LEN, rref2path_
from pylightnix.store.query import alldrefs, dref_exists, drefcfg_, drefrrefs, rrefctx, rrefmeta
from pylightnix.store.settings import StorageSettings, fsS
from pylightnix.types import DRef, RRef

METRICS_FILE = "metrics.json"
"""The file of a realization whose numbers are its metrics."""


@dataclass(frozen=True)
class Run:
    """One realization as an experiment record.

    Attributes:
        rref: the realization.
        dref: its derivation.
        name: the stage name.
        params: the config's parameters, nested keys flattened as ``"a.b"``;
            a dependency shows as its stage name, a file of one as
            ``"name/file"``; ``name``, keys starting with ``__`` and promises
            (``[selfref, ...]``) are left out.
        metrics: numbers describing the result (see the module docstring).
        status: ``"ok"`` or ``"failed"``.
        error: for a failed run, ``"<ExceptionType>: <message>"``.
        build_start: when its build started (seconds since the epoch).
        duration: how long the build took (seconds).
        chosen: whether its derivation's matcher picks it in its context.
    """

    rref: RRef
    dref: DRef
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    status: str = "ok"
    error: str | None = None
    build_start: float | None = None
    duration: float | None = None
    chosen: bool = False

    def to_json(self) -> dict[str, Any]:
        """The run as JSON-ready data (every field, by name)."""
        return {
            "rref": str(self.rref),
            "dref": str(self.dref),
            "name": self.name,
            "params": json.loads(json.dumps(self.params)),
            "metrics": dict(self.metrics),
            "status": self.status,
            "error": self.error,
            "build_start": self.build_start,
            "duration": self.duration,
            "chosen": self.chosen,
        }


def _show_value(v: Any) -> Any:
    if is_dref(v):
        return str(dref_name(DRef(v)))
    if is_refpath(v):
        return "/".join([str(dref_name(DRef(v[0]))), *v[1:]])
    if isinstance(v, list):
        return [_show_value(x) for x in v]
    if isinstance(v, dict):
        return {k: _show_value(x) for k, x in v.items()}
    return v


def _flatten(d: Mapping[str, Any], prefix: str, out: dict[str, Any]) -> None:
    for k in sorted(d):
        v = d[k]
        if isinstance(v, list) and v and v[0] == selfref:
            continue  # a promise of this stage's own output, not a parameter
        if isinstance(v, dict) and v:
            _flatten(v, f"{prefix}{k}.", out)
        else:
            out[f"{prefix}{k}"] = _show_value(v)


def config_params(config: Mapping[str, Any]) -> dict[str, Any]:
    """The parameters of a config as a run shows them (see :attr:`Run.params`).

    >>> config_params({"name": "train", "opt": {"lr": 0.1}, "data": "dref:" + "a" * 32 + "-mnist"})
    {'data': 'mnist', 'opt.lr': 0.1}
    """
    top = {k: v for k, v in config.items() if k != "name" and not k.startswith("__")}
    out: dict[str, Any] = {}
    _flatten(top, "", out)
    return out


def _numbers(d: Any, prefix: str, out: dict[str, float], *, nested: bool) -> None:
    if not isinstance(d, dict):
        return
    for k, v in d.items():
        if isinstance(v, bool):
            continue
        if isinstance(v, int | float):
            out[f"{prefix}{k}"] = float(v)
        elif nested and isinstance(v, dict):
            _numbers(v, f"{prefix}{k}.", out, nested=True)


def _read_json(path: str) -> Any:
    try:
        with open(path, "rb") as f:
            return json.loads(f.read())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
        return None


def _read_number(path: str) -> float | None:
    try:
        with open(path, encoding="utf-8") as f:
            return float(f.read().strip())
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError, ValueError):
        return None


def metric_name(score_file: str) -> str:
    """The metric name of a ``match_best`` score file: its base name without extension.

    >>> metric_name("eval/accuracy.txt")
    'accuracy'
    """
    return os.path.splitext(os.path.basename(score_file))[0]


def _metrics(
    rref: RRef,
    S: StorageSettings,
    drv: Derivation | None,
    score_file: str | None,
    metrics_file: str | None,
) -> dict[str, float]:
    root = rref2path_(rref, S)
    out: dict[str, float] = {}
    _numbers(_read_json(os.path.join(root, METRICS_FILE)), "", out, nested=True)
    if out:
        return out
    m = drv.matcher if drv is not None else None
    if isinstance(m, Match) and not isinstance(m.key, FileKey) and score_file is None:
        try:
            v = m.key(S, rref)
        except Exception:  # a user's key may fail on a failed run's partial outputs
            v = None
        if isinstance(v, int | float) and not isinstance(v, bool):
            return {"score": float(v)}
    elif score_file is not None:
        n = _read_number(os.path.join(root, score_file))
        if n is not None:
            return {metric_name(score_file): n}
    if metrics_file is not None:
        _numbers(_read_json(os.path.join(root, metrics_file)), "", out, nested=False)
    return out


def _targets(what: Any, S: StorageSettings | None) -> tuple[list[DRef], Closure | None]:
    if isinstance(what, tuple) and len(what) == 2 and isinstance(what[1], Closure):
        what = what[1]
    if isinstance(what, Closure):
        return list(what.targets), what
    if isinstance(what, str) and is_dref(what):
        s = fsS(S)
        if not dref_exists(DRef(what), s):
            raise RefError(
                f"{what} is not in the store at {s.storage!r}: pass a DRef of a stage "
                "instantiated in this store, or its name",
                ref=what,
            )
        return [DRef(what)], None
    if isinstance(what, str) and is_name(what):
        return [d for d in alldrefs(S) if dref_name(d) == what], None
    raise RefError(
        f"runs() expects a stage name, a DRef or what instantiate() returned, got {what!r}",
        ref=str(what),
    )


def _chosen_by_matcher(drv: Derivation, S: StorageSettings, ok: list[RRef]) -> set[RRef]:
    try:
        m = drv.matcher(S, list(ok))
    except MatcherError:
        return set()  # e.g. match_only with several runs: none is chosen
    return set(m or ()) & set(ok)


def _runs_of(
    dref: DRef, S: StorageSettings, drv: Derivation | None, metrics_file: str | None
) -> list[Run]:
    rrefs = drefrrefs(dref, S)
    failures = {r: rref_failure(r, S) for r in rrefs}
    chash_of = {r: context_hash(rrefctx(r, S)) for r in rrefs}
    chosen: set[RRef] = set()
    score_file: str | None = None
    if drv is not None:
        if isinstance(drv.matcher, Match) and isinstance(drv.matcher.key, FileKey):
            score_file = drv.matcher.key.filename
        by_ctx: dict[str, list[RRef]] = {}
        for r in rrefs:
            if failures[r] is None:
                by_ctx.setdefault(chash_of[r], []).append(r)
        for ok in by_ctx.values():
            chosen |= _chosen_by_matcher(drv, S, ok)
    else:
        records = chosen_records(S, dref)
        score_file = next((x.score_file for x in records.values() if x.score_file), None)
        for r in rrefs:
            rec = records.get(chash_of[r][:CHASH_LEN])
            if rec is not None and r in rec.rrefs:
                chosen.add(r)
    params = config_params(drefcfg_(dref, S).val)
    out: list[Run] = []
    for r in rrefs:
        f = failures[r]
        meta = rrefmeta(r, S)
        start = meta.get("build_start")
        stop = meta.get("build_stop")
        bstart = float(start) if isinstance(start, int | float) else None
        duration = (
            float(stop) - bstart if bstart is not None and isinstance(stop, int | float) else None
        )
        out.append(
            Run(
                rref=r,
                dref=dref,
                name=str(dref_name(dref)),
                params=dict(params),
                metrics=_metrics(r, S, drv, score_file, metrics_file),
                status="failed" if f is not None else "ok",
                error=f"{f.error}: {f.message}" if f is not None else None,
                build_start=bstart,
                duration=duration,
                chosen=r in chosen and f is None,
            )
        )
    return out


def runs(
    what: Any, *, S: StorageSettings | None = None, metrics_file: str | None = None
) -> list[Run]:
    """Every run (realization, failed ones included) of a stage, oldest build first.

    Args:
        what: a stage name (every derivation of that name in the store), a
            DRef, or what :func:`instantiate` returned (its target derivations,
            whose matchers then decide :attr:`Run.chosen`).
        S: the store (default: the closure's, else the current one).
        metrics_file: a JSON file of each realization whose top-level numbers
            are its metrics when it has no ``metrics.json`` and no score file.

    Returns:
        the runs sorted by build start (then RRef).

    Raises:
        RefError: ``what`` is neither a name, a DRef nor a closure, or the DRef
            is not in the store.
    """
    drefs, closure = _targets(what, S)
    s = closure.S if closure is not None and S is None else fsS(S)
    index: Mapping[DRef, Derivation] = {}
    if closure is not None:
        index = closure.index or {d.dref: d for d in closure.derivations}
    out: list[Run] = []
    for d in dict.fromkeys(drefs):
        out.extend(_runs_of(d, s, index.get(d), metrics_file))
    out.sort(key=lambda r: (r.build_start is None, r.build_start or 0.0, r.rref))
    return out


def param_keys(rs: Iterable[Run], *, varying: bool = False) -> list[str]:
    """The parameter keys of ``rs``, sorted; with ``varying``, only those whose values differ
    between runs (all of them when none differs).

    >>> a = Run("rref:a", "dref:a", "t", params={"lr": 0.1, "n": 1})  # type: ignore[arg-type]
    >>> b = Run("rref:b", "dref:b", "t", params={"lr": 0.2, "n": 1})  # type: ignore[arg-type]
    >>> param_keys([a, b]), param_keys([a, b], varying=True)
    (['lr', 'n'], ['lr'])
    """
    runs_ = list(rs)
    keys = sorted({k for r in runs_ for k in r.params})
    if not varying:
        return keys
    vary = [
        k for k in keys if len({json.dumps(r.params.get(k), sort_keys=True) for r in runs_}) > 1
    ]
    return vary or keys


def metric_keys(rs: Iterable[Run]) -> list[str]:
    """The metric keys of ``rs``, sorted."""
    return sorted({k for r in rs for k in r.metrics})


def sort_runs(rs: Iterable[Run], key: str, *, descending: bool = True) -> list[Run]:
    """``rs`` ordered by the metric (or else parameter) ``key``, numbers first (highest first
    unless not ``descending``), then other values as text, then runs without it; stable.

    Raises:
        OptionError: no run has a metric or parameter ``key``.
    """
    runs_ = list(rs)
    if runs_ and not any(key in r.metrics or key in r.params for r in runs_):
        raise OptionError(
            f"no run has a metric or parameter {key!r} to sort by (metrics: "
            f"{', '.join(metric_keys(runs_)) or 'none'}; parameters: "
            f"{', '.join(param_keys(runs_)) or 'none'})",
            option="sort",
            value=key,
        )

    def k(r: Run) -> tuple[int, float, str]:
        v = r.metrics.get(key, r.params.get(key))
        if v is None:
            return (2, 0.0, "")
        if isinstance(v, int | float) and not isinstance(v, bool):
            return (0, -v if descending else v, "")
        return (1, 0.0, json.dumps(v, sort_keys=True))  # text after numbers

    return sorted(runs_, key=k)

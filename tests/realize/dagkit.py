"""Building blocks for realize tests: a counting realizer and random-DAG stages."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pylightnix import (
    DRef,
    Registry,
    StorageSettings,
    match_all,
    match_best,
    match_latest,
    match_only,
    match_some,
    mkdrv,
)
from pylightnix.realize.build import build_tmpdir
from pylightnix.store.query import rref2path, rrefbstart
from pylightnix.types import Context, Path, RRef


@dataclass(frozen=True)
class Counting:
    """A realizer that makes ``nouts`` outputs and records each call in ``counter``.

    Every output holds ``score.txt`` (deterministic from the stage name and the
    output index, unless ``random``), ``deps.json`` (the context it was built in)
    and ``i.txt``. Each call writes one file to ``counter`` (outside the store)
    holding the DRef and the realize arguments, so tests count builds exactly.
    """

    counter: str
    nouts: int = 1
    random: bool = False

    def __call__(
        self, S: StorageSettings, dref: DRef, context: Context, realize_args: Mapping[str, Any]
    ) -> list[Path]:
        with open(os.path.join(self.counter, uuid.uuid4().hex), "w") as f:
            json.dump({"dref": dref, "args": dict(realize_args)}, f)
        tmp = build_tmpdir(S)
        outs = []
        for i in range(self.nouts):
            o = os.path.join(tmp, f"out{i}")
            os.mkdir(o)
            score = os.urandom(4).hex() if self.random else f"{(hash_of(dref) + i * 7) % 97}"
            with open(os.path.join(o, "score.txt"), "w") as f:
                f.write(str(int(score, 16) if self.random else score))
            with open(os.path.join(o, "deps.json"), "w") as f:
                json.dump({k: sorted(v) for k, v in context.items()}, f, sort_keys=True)
            with open(os.path.join(o, "i.txt"), "w") as f:
                f.write(str(i))
            outs.append(Path(o))
        return outs


def hash_of(dref: DRef) -> int:
    """A small stable number derived from a DRef."""
    return int(dref[5:13], 16)


def calls(counter: str) -> list[dict[str, Any]]:
    """Every realizer call recorded in ``counter``."""
    out = []
    for n in os.listdir(counter):
        with open(os.path.join(counter, n)) as f:
            out.append(json.load(f))
    return out


def build_counts(counter: str) -> dict[str, int]:
    """Realizer calls per DRef."""
    out: dict[str, int] = {}
    for c in calls(counter):
        out[c["dref"]] = out.get(c["dref"], 0) + 1
    return out


def matcher_of(spec: Mapping[str, Any]) -> Any:
    """The matcher a DAG spec names."""
    kind, n = spec["matcher"], spec["n"]
    if kind == "latest":
        return match_latest(n)
    if kind == "all":
        return match_all()
    if kind == "some":
        return match_some(n)
    if kind == "best":
        return match_best("score.txt", n)
    return match_only()


def expected_choice(S: StorageSettings, spec: Mapping[str, Any], cands: list[RRef]) -> list[RRef]:
    """What the spec's matcher must choose among ``cands``, computed independently."""
    kind, n = spec["matcher"], spec["n"]
    if kind == "all":
        return sorted(cands)
    if kind == "only":
        assert len(cands) == 1
        return list(cands)
    if kind == "some":
        return sorted(sorted(cands)[:n])
    if kind == "latest":
        ranked = sorted(cands, key=lambda r: (-rrefbstart(r, S), r))
        return sorted(ranked[:n])

    def score(r: RRef) -> float:
        with open(os.path.join(rref2path(r, S), "score.txt")) as f:
            return float(f.read())

    ranked = sorted(cands, key=lambda r: (-score(r), r))
    return sorted(ranked[:n])


def dag_stage(specs: list[dict[str, Any]], counter: str, random: bool, r: Registry) -> list[DRef]:
    """Register one derivation per spec; stage i depends on the stages in spec['deps']."""
    drefs: list[DRef] = []
    for i, sp in enumerate(specs):
        cfg: dict[str, Any] = {"name": f"s{i}", "deps": [drefs[j] for j in sp["deps"]]}
        nondet = random and sp["matcher"] != "only"
        drefs.append(mkdrv(cfg, matcher_of(sp), Counting(counter, sp["nouts"], nondet), r=r))
    return drefs

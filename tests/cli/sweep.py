"""A learning-rate sweep of @autostage stages driven by the `runs` command-line tests.

``train`` makes two outputs per build (seeds 0 and 1) and keeps the better
one by ``accuracy.txt``; ``lr=0.3`` with seed 1 diverges.
"""

from __future__ import annotations

from pylightnix import autostage, match_best, selfref
from pylightnix.types import DRef


@autostage
def dataset(n=20, out=[selfref, "data.csv"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        f.writelines(f"{i},{2 * i}\n" for i in range(n))


@autostage(nouts=2, matcher=match_best("accuracy.txt"))
def train(data=dataset, lr=0.1, acc=[selfref, "accuracy.txt"], rindex=0):  # type: ignore[no-untyped-def]  # noqa: B006
    print(f"training lr={lr} seed={rindex}")
    if lr == 0.3 and rindex == 1:
        raise FloatingPointError(f"loss is nan (lr={lr}, seed={rindex})")
    with open(acc, "w") as f:
        f.write(str(round(0.9 - abs(lr - 0.22) + rindex / 100, 4)))


def sweep(lrs: list[float] = [0.1, 0.2, 0.3]) -> list[DRef]:  # noqa: B006
    """Stage: train at each learning rate."""
    return [train(lr=lr) for lr in lrs]


@autostage
def finetune(lr=0.01, out=[selfref, "f.txt"]):  # type: ignore[no-untyped-def]  # noqa: B006
    with open(out, "w") as f:
        f.write(str(lr))


def two() -> list[DRef]:
    """Stage: two stages that both have an ``lr`` key."""
    return [train(lr=0.1), finetune()]

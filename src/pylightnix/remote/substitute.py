"""Substitution: fetch a derivation's realizations from remote caches instead of building.

The realize step (``realize/step.py``) asks :meth:`Substituters.substitute`
when the local realizations of a derivation in its context do not satisfy
its matcher; whatever it pulls is offered to the matcher before any build.
A substituter that cannot be reached, or holds a damaged or untrusted
object, is a warning, never a failed realize (docs/remote-format.md).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Sequence

from pylightnix.errors import IntegrityError, RemoteError, TrustError
from pylightnix.refs import is_hashpart, mkrref, parse_dref
from pylightnix.remote.backend import Remote, open_remote
from pylightnix.remote.keys import parse_trusted_keys
from pylightnix.remote.layout import drv_dir, index_dir
from pylightnix.remote.transfer import pull
from pylightnix.store.layout import rref2path_
from pylightnix.store.settings import StorageSettings
from pylightnix.types import DRef, HashPart, RRef

log = logging.getLogger("pylightnix.remote")

ENV_SUBSTITUTERS = "PYLIGHTNIX_SUBSTITUTERS"
"""Whitespace-separated URLs of substituters, used when ``realize`` is given none."""
ENV_TRUSTED_KEYS = "PYLIGHTNIX_TRUSTED_KEYS"
"""Whitespace-separated public keys ``name:base64``, used when ``realize`` is given none."""


class Substituters:
    """The substituters of one realize call, asked in order (pickles with its remotes).

    Attributes:
        remotes: the remote caches.
        trusted_keys: public keys every substituted claim must be signed by, or
            ``None`` to accept any claim whose objects hash right.
        unreachable: URLs that failed during this realize (not asked again).
    """

    def __init__(self, remotes: Sequence[Remote], trusted_keys: Sequence[str] | None) -> None:
        self.remotes = tuple(remotes)
        self.trusted_keys = None if trusted_keys is None else tuple(trusted_keys)
        self.unreachable: set[str] = set()

    def __repr__(self) -> str:
        return f"Substituters({[r.url for r in self.remotes]!r})"

    def __bool__(self) -> bool:
        return bool(self.remotes)

    def substitute(self, dref: DRef, chash: str, S: StorageSettings) -> list[RRef]:
        """Pull every realization of ``dref`` in context ``chash`` the substituters hold.

        Returns the RRefs pulled (realizations already stored are not pulled again).
        """
        got: list[RRef] = []
        dhash, name = parse_dref(dref)
        for R in self.remotes:
            if R.url in self.unreachable:
                continue
            try:
                marked = R.listdir(index_dir(dref, chash))
                # A marker is written before its claim: only claimed ones count.
                claimed = set(R.listdir(drv_dir(dref))) if marked else set()
            except RemoteError as e:
                self.unreachable.add(R.url)
                log.warning("substituter %s is unreachable (%s); building locally", R.url, e)
                continue
            for rh in marked:
                if not is_hashpart(rh) or f"{rh}.json" not in claimed:
                    continue
                r = mkrref(HashPart(rh), dhash, name)
                if os.path.isdir(rref2path_(r, S)):
                    continue
                try:
                    got.extend(x for x in pull([r], R, S=S, trusted_keys=self.trusted_keys).targets)
                except TrustError as e:
                    log.warning("substituter %s: skipping %s: %s", R.url, r, e)
                except IntegrityError as e:
                    log.warning("substituter %s: skipping damaged %s: %s", R.url, r, e)
                except RemoteError as e:
                    log.warning("substituter %s: cannot pull %s: %s", R.url, r, e)
        return got


def make_substituters(
    substituters: Iterable[Remote | str | os.PathLike[str]] | None,
    trusted_keys: Iterable[str] | None,
) -> Substituters | None:
    """The substituters of a realize call: explicit arguments, else the environment.

    ``None`` means "not given" (then ``$PYLIGHTNIX_SUBSTITUTERS`` and
    ``$PYLIGHTNIX_TRUSTED_KEYS`` apply); an empty list means none. Returns
    ``None`` when there are no substituters.

    Raises:
        OptionError: a trusted key is not ``name:base64``.
        RemoteError: a substituter is not a path or URL.
    """
    if substituters is None:
        substituters = os.environ.get(ENV_SUBSTITUTERS, "").split()
    if trusted_keys is None:
        env = os.environ.get(ENV_TRUSTED_KEYS, "").split()
        trusted_keys = env or None
    if isinstance(substituters, (str, os.PathLike, Remote)):
        substituters = [substituters]
    remotes = [open_remote(x) for x in substituters]
    if not remotes:
        return None
    keys = (
        None
        if trusted_keys is None
        else [trusted_keys]
        if isinstance(trusted_keys, str)
        else list(trusted_keys)
    )
    if keys is not None:
        parse_trusted_keys(keys)  # refuse a malformed key before anything is built
    return Substituters(remotes, keys)

"""The one error tree of pylightnix.

Every error the library raises on purpose is a :class:`PylightnixError`;
each subclass also inherits the builtin exception a caller would naturally
catch, and carries the offending values as attributes::

    PylightnixError (Exception)
    ├── RefError (ValueError)            .ref
    │   └── LensError                    .ref
    ├── ConfigError (ValueError)         .key_path
    ├── StoreError (OSError)             .path
    │   ├── StoreVersionError            .expected, .actual
    │   ├── UpgradeError                 .path
    │   ├── IntegrityError               .ref, .expected, .actual
    │   │   └── TrustError                   .ref, .remote
    │   └── RemoteError                  .url
    ├── InstantiateError (RuntimeError)
    ├── RealizeError (RuntimeError)      .dref
    │   ├── BuildError                   .dref, .stage
    │   │   └── BuildsFailedError        .failures
    │   ├── PromiseError                 .dref, .missing
    │   ├── MatcherError                 .dref
    │   ├── NotRealizedError             .dref
    │   ├── ReplError                    .dref
    │   └── ClusterError                 .dref or .path
    ├── LockError (RuntimeError)         .path
    ├── InUseError (RuntimeError)        .ref, .users
    ├── OptionError (ValueError)         .option, .value
    ├── ArchiveError (ValueError)        .archive
    │   └── UnpackLimitError             .archive, .limit, .value
    ├── UnsafeArchiveError (ValueError)  .archive, .member
    ├── FetchError (OSError)             .url
    │   └── HashMismatchError            .url, .algo, .expected, .actual
    ├── ExtraMissingError (ImportError)  .extra
    └── RequestError (ValueError)        .status

Every error pickles (it crosses process and Dask boundaries): the message is
the only positional argument and the attributes are restored by ``__reduce__``.
"""

from __future__ import annotations

from typing import Any


class PylightnixError(Exception):
    """Root of every error raised by pylightnix on purpose."""

    def __init__(self, message: str, **attrs: Any) -> None:
        super().__init__(message)
        self._attrs = attrs
        for k, v in attrs.items():
            setattr(self, k, v)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (type(self), str(self), self._attrs))


def _rebuild(cls: type[PylightnixError], message: str, attrs: dict[str, Any]) -> PylightnixError:
    return cls(message, **attrs)


class RefError(PylightnixError, ValueError):
    """A string is not a valid DRef/RRef/name, or a ref is unknown."""


class LensError(RefError):
    """A lens walk or terminal failed; the message shows the path walked."""


class ConfigError(PylightnixError, ValueError):
    """A config is not plain JSON data or is malformed; ``.key_path`` names where."""


class StoreError(PylightnixError, OSError):
    """The store is missing, malformed, or an operation on it failed."""


class StoreVersionError(StoreError):
    """The store on disk has another layout version than this library."""


class UpgradeError(StoreError):
    """A store cannot be upgraded now (in use, or not a store of the older version)."""


class IntegrityError(StoreError):
    """Stored or received content does not match its hash."""


class TrustError(IntegrityError):
    """A remote's claim is unsigned, or signed by no trusted key, or its signature is wrong."""


class RemoteError(StoreError):
    """A remote cache is unreachable, read-only, of another format, or lacks an object."""


class InstantiateError(PylightnixError, RuntimeError):
    """A stage function misbehaved while registering derivations."""


class RealizeError(PylightnixError, RuntimeError):
    """Realization of a derivation failed."""


class BuildError(RealizeError):
    """A realizer raised; the original exception is chained as ``__cause__``."""

    @property
    def exception(self) -> BaseException | None:
        """The realizer's exception (``__cause__``; the original's spelling)."""
        return self.__cause__


class BuildsFailedError(BuildError):
    """Several builds of one parallel realize failed; ``.failures`` lists each.

    Each entry is a dict with ``dref``, ``stage``, ``worker``, ``error`` and
    ``tail`` (the last lines of its build log).
    """


class PromiseError(RealizeError):
    """A build did not produce files its config promised (``[selfref, ...]``)."""


class MatcherError(RealizeError):
    """A matcher misbehaved (still unsatisfied after a build, or returned foreign refs)."""


class NotRealizedError(RealizeError):
    """A derivation would need a build, but the caller asserted it is realized."""


class ReplError(RealizeError):
    """A REPL session call does not fit its state (nothing paused, already done...)."""


class ClusterError(RealizeError):
    """Builds cannot run on the executor: workers do not see the store, a realizer
    does not pickle, or a worker died for good while building."""


class LockError(PylightnixError, RuntimeError):
    """A lock could not be taken."""


class InUseError(PylightnixError, RuntimeError):
    """An object cannot be removed: other stored objects or result links use it (``.users``)."""


class OptionError(PylightnixError, ValueError):
    """A keyword option has a value the function does not accept (``.option``, ``.value``)."""


class ArchiveError(PylightnixError, ValueError):
    """An archive is corrupt, truncated or of an unknown kind; ``.archive`` names it."""


class UnpackLimitError(ArchiveError):
    """An archive unpacks to more than a limit allows (``.limit``: ``"max_size"`` or
    ``"max_ratio"``, ``.value``: the limit in force)."""


class UnsafeArchiveError(PylightnixError, ValueError):
    """An archive member would land outside the destination (``..``, absolute
    path, link escaping it) or is a device file; ``.member`` names it."""


class FetchError(PylightnixError, OSError):
    """A download failed (network or HTTP error); ``.url`` names it."""


class HashMismatchError(FetchError):
    """Downloaded bytes do not have the expected hash (``.expected``, ``.actual``)."""


DISTRIBUTION = "pylightnix-ng"
"""This project's distribution name (the import name is ``pylightnix``; the package
index's ``pylightnix`` is the original project, not this one)."""


def extra_hint(extra: str) -> str:
    """The command that installs the optional extra ``extra``.

    >>> extra_hint("cli")
    "pip install 'pylightnix-ng[cli]' (in a checkout: pip install -e '.[cli]')"
    """
    return f"pip install '{DISTRIBUTION}[{extra}]' (in a checkout: pip install -e '.[{extra}]')"


class ExtraMissingError(PylightnixError, ImportError):
    """An optional extra (see :func:`extra_hint`) is not installed."""


class RequestError(PylightnixError, ValueError):
    """A request to the web view is refused (bad path, foreign Host, bad page number);
    ``.status`` is the HTTP status it answers with."""

"""Creating stores: :func:`fsinit` and the seed's :func:`store_initialize`."""

from __future__ import annotations

from pylightnix.store.fsops import remove_tree
from pylightnix.store.layout import init_store
from pylightnix.store.query import forget_cached
from pylightnix.store.settings import StorageSettings, fsS, mkSS, set_default_storage
from pylightnix.store.temproots import release_temproots


def fsinit(
    S: StorageSettings | str | None = None,
    check_not_exist: bool = False,
    remove_existing: bool = False,
    use_as_default: bool = False,
) -> StorageSettings:
    """Create a store (idempotent) and return its settings.

    Args:
        S: settings, a root folder, or ``None`` for the default store.
        check_not_exist: fail if a store already exists there.
        remove_existing: delete an existing store at that place first.
        use_as_default: also make it the process's default store (the
            original's default was ``True``; here it is opt-in).
    """
    s = mkSS(S) if isinstance(S, str) else fsS(S)
    if remove_existing:
        # This process's record goes with the store: later ones start afresh.
        release_temproots(s)
        remove_tree(s.storage)
        remove_tree(s.tmpdir)
        forget_cached(s)
    init_store(s, check_not_exist=check_not_exist)
    if use_as_default:
        set_default_storage(s)
    return s


def store_initialize(
    custom_store: str | None = None,
    custom_tmp: str | None = None,
    check_not_exist: bool = False,
) -> StorageSettings:
    """The seed's entry point: make sure the store exists.

    With ``custom_store`` (a storage folder) and/or ``custom_tmp``, that store
    becomes the process's default, as in the seed; without, the default store
    (``$PYLIGHTNIX_ROOT`` or ``~/_pylightnix``) is used.
    """
    if custom_store is None and custom_tmp is None:
        return fsinit(None, check_not_exist=check_not_exist)
    base = fsS(None)
    s = StorageSettings(
        base.root,
        mkSS(base.root, custom_store).storage if custom_store else base.storage,
        mkSS(base.root, None, custom_tmp).tmpdir if custom_tmp else base.tmpdir,
        base.durable,
    )
    s = fsinit(s, check_not_exist=check_not_exist)
    set_default_storage(s)
    return s

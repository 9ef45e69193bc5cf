"""The original Pylightnix's module ``pylightnix.arch``, kept for old code.

Its names resolve lazily onto this package, each with a DeprecationWarning
naming the new spelling (table: :mod:`pylightnix.legacy`; see docs/migrating.md).
"""

from pylightnix.legacy import module_getattr

__getattr__ = module_getattr(__name__)

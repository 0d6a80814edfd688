"""The errors flordb raises on purpose. Each says what went wrong in one line a user can act on.

:class:`FlorError` is their root. Errors that existed before it keep their builtin bases (a
``ValueError`` stays one), so ``except ValueError`` in user code goes on working.
"""

from __future__ import annotations


class FlorError(Exception):
    """The root of flordb's own errors."""


class UntrustedStoreError(FlorError, PermissionError):
    """Loading a stored object would run code from the store without the user's consent."""


class StoreValueError(FlorError, ValueError):
    """A value read from the store is not what it must be (a snapshot that is not a commit id,
    say): the store is damaged or was written by someone hostile."""


class BadNameError(FlorError, ValueError):
    """A name given to ``flor.log``/``flor.arg``/``flor.loop`` that cannot be stored."""


class RecordingStoppedError(FlorError, RuntimeError):
    """A record was asked for after recording stopped because the store cannot be written."""

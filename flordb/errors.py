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


class UsageError(FlorError, Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class ArgCastError(FlorError, ValueError):
    """A ``--kwargs`` value that cannot be cast to the type of its default."""


class NotRestorableError(FlorError, TypeError):
    """An enrolled object that cannot be restored in place."""


class PlanError(FlorError, ValueError):
    """The replay cannot be planned as asked (bad ``--where``, unknown names, no git)."""


class ParseError(FlorError, ValueError):
    """A source that is not valid Python."""


class WhereError(FlorError, ValueError):
    """A ``where`` expression that pandas cannot evaluate over the runs' top-level values."""


class SchemaTooNewError(FlorError, RuntimeError):
    """The store was written by a newer flordb than the one running."""


class CorruptObjectError(FlorError, OSError):
    """An object file whose bytes no longer match its name."""


class NotAProjectError(FlorError, FileNotFoundError):
    """Raised when a read is asked of a directory with no flordb store."""


class DatasetError(FlorError, ValueError):
    """A dataset operation that cannot be done as asked."""


class IntegrityError(DatasetError):
    """A released version whose members no longer match its content hash."""


class RegistryError(FlorError, LookupError):
    """No such metric, or no checkpoint for the chosen row."""


class FeatureError(FlorError, ValueError):
    """A feature definition or value that does not fit."""


class PlotError(FlorError, ValueError):
    """Nothing to plot, or a loop or label that is not there."""


class QueryError(FlorError, ValueError):
    """SQL that ``flor.query`` / ``flordb query`` cannot run: empty, not a read, or invalid."""

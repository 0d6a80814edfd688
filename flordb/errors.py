"""The errors flordb raises on purpose. Each says what went wrong in one line a user can act on.

:class:`FlorError` is their root, with four groups: :class:`StoreError` (the store cannot be
read or written as asked), :class:`InputError` (a call, a name, an option or an expression
that cannot be taken), :class:`HindsightError` (propagation, planning and replay) and
:class:`LifecycleError` (datasets, features, the registry, lineage). Errors that existed before
the groups keep their builtin bases (a ``ValueError`` stays one), so ``except ValueError`` in
user code goes on working. A builtin exception flordb raises is a bug, and shows its traceback.
"""

from __future__ import annotations


class FlorError(Exception):
    """The root of flordb's own errors."""


class StoreError(FlorError):
    """The store cannot be read or written as asked."""


class InputError(FlorError):
    """Input that cannot be taken: a name, a value, an option, an expression, a call made
    where it cannot work."""


class HindsightError(FlorError):
    """Propagation, planning or replay cannot be done as asked."""


class LifecycleError(FlorError):
    """A dataset, feature, registry or lineage operation that cannot be done as asked."""


# ----------------------------------------------------------------------- the store
class UntrustedStoreError(StoreError, PermissionError):
    """Loading a stored object would run code from the store without the user's consent."""


class StoreValueError(StoreError, ValueError):
    """A value read from the store is not what it must be (a snapshot that is not a commit id,
    say): the store is damaged or was written by someone hostile."""


class RecordingStoppedError(StoreError, RuntimeError):
    """A record was asked for after recording stopped because the store cannot be written."""


class SchemaTooNewError(StoreError, RuntimeError):
    """The store was written by a newer flordb than the one running."""


class CorruptObjectError(StoreError, OSError):
    """An object file whose bytes no longer match its name."""


class CheckpointWriteError(StoreError, RuntimeError):
    """A checkpoint could not be written (its background writer failed)."""


class NotAProjectError(StoreError, FileNotFoundError):
    """Raised when a read is asked of a directory with no flordb store."""


# ----------------------------------------------------------------------- input
class BadNameError(InputError, ValueError):
    """A name given to ``flor.log``/``flor.arg``/``flor.loop`` that cannot be stored."""


class BadTypeError(InputError, TypeError):
    """An argument of the wrong type (a name that is not a ``str``, say)."""


class BadValueError(InputError, ValueError):
    """An argument of the right type whose value cannot be taken (a negative epsilon)."""


class MisuseError(InputError, RuntimeError):
    """A call made where it cannot work (``flor.commit()`` inside ``flor.loop``, an object
    enrolled twice)."""


class UsageError(InputError, Exception):
    """Bad input from the command line: reported in one line, exit status 2."""


class ArgCastError(InputError, ValueError):
    """A ``--kwargs`` value that cannot be cast to the type of its default."""


class WhereError(InputError, ValueError):
    """A ``where`` expression that cannot be evaluated over the runs' top-level values."""


class QueryError(InputError, ValueError):
    """SQL that ``flor.query`` / ``flordb query`` cannot run: empty, not a read, or invalid."""


class PlotError(InputError, ValueError):
    """Nothing to plot, or a loop or label that is not there."""


# ----------------------------------------------------------------------- hindsight
class PlanError(HindsightError, ValueError):
    """The replay cannot be planned as asked (bad ``--where``, unknown names, no git)."""


class ParseError(HindsightError, ValueError):
    """A source that is not valid Python."""


class NotRestorableError(HindsightError, TypeError):
    """An enrolled object that cannot be restored in place."""


class SnapshotError(HindsightError, LookupError):
    """A run's code snapshot does not hold what replay needs (the script, the version)."""


class ReplayUnitError(HindsightError, RuntimeError):
    """A replay unit's child process cannot follow its directive (no such unit, a checkpoint
    it needs is missing, the enrolled objects differ from the recording's)."""


# ----------------------------------------------------------------------- lifecycle
class DatasetError(LifecycleError, ValueError):
    """A dataset operation that cannot be done as asked."""


class IntegrityError(DatasetError):
    """A released version whose members no longer match its content hash."""


class RegistryError(LifecycleError, LookupError):
    """No such metric, or no checkpoint for the chosen row."""


class FeatureError(LifecycleError, ValueError):
    """A feature definition or value that does not fit."""


class LineageError(LifecycleError, LookupError):
    """Nothing in the lineage records has the name asked for."""

"""Typed encoding of logged values that are not hot numeric series.

===========  ============================  =================================================
vtype        stored ``value``              decoded as
===========  ============================  =================================================
``int``      INTEGER                       ``int``
``float``    REAL                          ``float``
``bool``     INTEGER 0/1                   ``bool``
``str``      TEXT                          ``str``
``strx``     BLOB (UTF-8, surrogatepass)   ``str`` holding lone surrogates (not valid UTF-8)
``null``     NULL                          ``None``
``json``     TEXT (JSON)                   ``list`` / ``dict`` (tuples come back as lists)
``bytes``    BLOB                          ``bytes``
``bigint``   TEXT (decimal)                ``int`` beyond 64 bits
``ndarray``  BLOB (``.npy`` format)        ``numpy.ndarray`` (numeric or text dtypes), read
                                           without pickle
``pickle``   BLOB (cloudpickle)            a :class:`PickledValue` showing the stored
                                           ``repr``; the object only through
                                           ``.load(trust_store=True)``
``repr``     TEXT (the object's ``repr``)  an :class:`Unpicklable`: the object could not be
                                           pickled; the ``repr`` column holds the error
===========  ============================  =================================================

Reading never unpickles: a store may come from someone else, and unpickling runs code.

Numpy scalars and 0-d arrays (anything with ``ndim == 0`` and ``.item()``, which covers 0-d
torch tensors) are logged as the Python number they hold.
"""

from __future__ import annotations

import json
from typing import Any

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_REPR_LIMIT = 1000


def as_scalar(value: Any) -> Any:
    """Numpy/torch 0-d values become Python numbers; everything else is returned as is."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def encode(value: Any) -> tuple[Any, str, str | None]:
    """``(stored value, vtype, repr or None)`` for one logged value."""
    value = as_scalar(value)
    t = type(value)
    if t is bool:
        return int(value), "bool", None
    if t is int:
        if _INT64_MIN <= value <= _INT64_MAX:
            return value, "int", None
        return str(value), "bigint", None
    if t is float:
        return value, "float", None
    if t is str:
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:  # lone surrogates: kept exactly, as bytes
            return value.encode("utf-8", "surrogatepass"), "strx", None
        return value, "str", None
    if value is None:
        return None, "null", None
    if t is bytes:
        return value, "bytes", None
    if t.__module__ == "numpy" and t.__name__ == "ndarray" and value.dtype.kind in "biufcUSMm":
        import io

        import numpy as np

        buffer = io.BytesIO()
        np.save(buffer, value, allow_pickle=False)
        return buffer.getvalue(), "ndarray", repr(value)[:_REPR_LIMIT]
    if t in (list, tuple, dict):
        try:
            return json.dumps(value, allow_nan=True), "json", None
        except (TypeError, ValueError):
            pass  # holds something JSON cannot represent: pickle it whole
    import cloudpickle

    try:
        return cloudpickle.dumps(value), "pickle", _repr(value)
    except Exception as exc:  # noqa: BLE001 - kept as the value's description, never raised
        return _repr(value), "repr", f"{type(exc).__name__}: {exc}"[:_REPR_LIMIT]


def _repr(value: Any) -> str:
    """``repr(value)`` cut to a bound; a description when ``repr`` itself raises."""
    try:
        return repr(value)[:_REPR_LIMIT]
    except Exception as exc:  # noqa: BLE001
        return f"<{type(value).__name__} object; repr raised {type(exc).__name__}>"


class Unpicklable:
    """A logged object that could not be pickled: its ``repr`` and the pickling error."""

    __slots__ = ("repr", "error")

    def __init__(self, text: str, error: str | None) -> None:
        self.repr = text
        self.error = error or "?"

    def __repr__(self) -> str:
        return f"<unpicklable {self.repr}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Unpicklable) and other.repr == self.repr

    def __hash__(self) -> int:
        return hash(self.repr)


class PickledValue:
    """A logged object stored as a pickle. Reads show its ``repr``; :meth:`load` unpickles it,
    which runs code from the store, so it must be asked for as trusting the store."""

    __slots__ = ("repr", "data")

    def __init__(self, text: str | None, data: bytes) -> None:
        self.repr = text or "?"
        self.data = data

    def __repr__(self) -> str:
        return f"<pickled {self.repr}>"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PickledValue) and other.data == self.data

    def __hash__(self) -> int:
        return hash(self.data)

    def load(self, *, trust_store: bool = False) -> Any:
        """The object itself. Unpickling executes code chosen by whoever wrote the store: pass
        ``trust_store=True`` only for a store you or your collaborators wrote."""
        if not trust_store:
            from flordb.errors import UntrustedStoreError

            raise UntrustedStoreError(
                "unpickling a stored value runs code from the store: call "
                ".load(trust_store=True) only if you trust whoever wrote it")
        import pickle

        return pickle.loads(self.data)


def decode(value: Any, vtype: str, text: str | None = None) -> Any:
    """The Python value for a stored ``(value, vtype, repr)``; pickles stay
    :class:`PickledValue` handles (never unpickled here)."""
    if vtype in ("int", "float", "str", "bytes", "null"):
        return value
    if vtype == "bool":
        return bool(value)
    if vtype == "json":
        return json.loads(value)
    if vtype == "bigint":
        return int(value)
    if vtype == "strx":
        return bytes(value).decode("utf-8", "surrogatepass")
    if vtype == "ndarray":
        import io

        import numpy as np

        return np.load(io.BytesIO(value), allow_pickle=False)
    if vtype == "pickle":
        return PickledValue(text, bytes(value))
    if vtype == "repr":
        return Unpicklable(value, text)
    from flordb.errors import StoreValueError

    raise StoreValueError(f"unknown stored value type {vtype!r}")


def is_missing(value: object) -> bool:
    """Whether ``value`` is a hole in a frame (None, NaN, NA); a list or dict never is."""
    if value is None:
        return True
    if isinstance(value, (list, dict, str, bytes)):
        return False
    import pandas as pd

    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):  # an array-like: not a single hole
        return False

"""Typed encoding of logged values that are not hot numeric series.

=========  ===========================  ==============================================
vtype      stored ``value``             decoded as
=========  ===========================  ==============================================
``int``    INTEGER                      ``int``
``float``  REAL                         ``float``
``bool``   INTEGER 0/1                  ``bool``
``str``    TEXT                         ``str``
``null``   NULL                         ``None``
``json``   TEXT (JSON)                  ``list`` / ``dict`` (tuples come back as lists)
``bytes``  BLOB                         ``bytes``
``pickle`` BLOB (cloudpickle)           the object; ``repr`` column keeps its ``repr``
=========  ===========================  ==============================================

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
        return value, "str", None
    if value is None:
        return None, "null", None
    if t is bytes:
        return value, "bytes", None
    if t in (list, tuple, dict):
        try:
            return json.dumps(value, allow_nan=True), "json", None
        except (TypeError, ValueError):
            pass  # holds something JSON cannot represent: pickle it whole
    import cloudpickle

    return cloudpickle.dumps(value), "pickle", repr(value)[:_REPR_LIMIT]


class UnloadableValue:
    """Stands in for a pickled value that cannot be unpickled in this environment."""

    def __init__(self, text: str, error: str) -> None:
        self.repr = text
        self.error = error

    def __repr__(self) -> str:
        return f"<unloadable {self.repr} ({self.error})>"


def decode(value: Any, vtype: str, text: str | None = None) -> Any:
    """The Python value for a stored ``(value, vtype, repr)``."""
    if vtype in ("int", "float", "str", "bytes", "null"):
        return value
    if vtype == "bool":
        return bool(value)
    if vtype == "json":
        return json.loads(value)
    if vtype == "bigint":
        return int(value)
    if vtype == "pickle":
        import pickle

        try:
            return pickle.loads(value)
        except Exception as exc:  # noqa: BLE001 - reported in the returned stand-in
            return UnloadableValue(text or "?", f"{type(exc).__name__}: {exc}")
    raise ValueError(f"unknown stored value type {vtype!r}")

"""Where two captured states differ: replay's check of its live state against the recording.

:func:`differences` walks a recorded state and a live one side by side (state dicts, their
tensors and arrays, module extras, optimizer param groups, RNG states, pickled objects) and
returns every place where they differ, with the largest absolute difference of numbers there.
On the CPU a replay that reproduces its run computes bit-identical state, so ``exact``
comparisons are the default; state computed on an accelerator is compared within
:data:`REL_TOL` / :data:`ABS_TOL`.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import Any

from flordb.state import unpickle

#: Tolerance for floating-point state computed on an accelerator (kernels need not be
#: deterministic there).
REL_TOL, ABS_TOL = 1e-5, 1e-7


@dataclass
class Difference:
    """One place where live state differs from the recorded state."""

    path: str
    max_abs_diff: float | None
    detail: str

    def describe(self) -> str:
        size = f", max |diff| {self.max_abs_diff:.3g}" if self.max_abs_diff is not None else ""
        return f"{self.path}{size} ({self.detail})"


def differences(recorded: Any, live: Any, path: str = "", exact: bool = True
                ) -> list[Difference]:
    """Every place where ``live`` differs from ``recorded``, paths rooted at ``path``."""
    out: list[Difference] = []
    _walk(recorded, live, path, exact, out, 0)
    return out


def _walk(a: Any, b: Any, path: str, exact: bool, out: list[Difference], depth: int) -> None:
    if depth > 32:
        out.append(Difference(path, None, "nested too deeply to compare"))
        return
    if isinstance(a, dict) and isinstance(b, dict):
        only_a, only_b = set(a) - set(b), set(b) - set(a)
        if only_a or only_b:
            out.append(Difference(path, None, "keys differ: recorded only "
                                  f"{_names(only_a)}, live only {_names(only_b)}"))
        for key in sorted(set(a) & set(b), key=repr):
            _walk(a[key], b[key], f"{path}.{key}" if path else str(key), exact, out, depth + 1)
        return
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(Difference(path, None, f"length {len(a)} recorded, {len(b)} live"))
            return
        for i, (x, y) in enumerate(zip(a, b)):
            _walk(x, y, f"{path}[{i}]", exact, out, depth + 1)
        return
    if _is_array(a) or _is_array(b):
        _arrays(a, b, path, exact, out)
        return
    if isinstance(a, bytes) and isinstance(b, bytes):
        if a != b:  # pickled objects: equal bytes are equal state; else compare the objects
            _walk(_state_of(unpickle(a)), _state_of(unpickle(b)), path, exact, out, depth + 1)
        return
    if _number(a) and _number(b):
        x, y = float(a), float(b)
        if not (x == y or (math.isnan(x) and math.isnan(y)) or (
                not exact and math.isclose(x, y, rel_tol=REL_TOL, abs_tol=ABS_TOL))):
            out.append(Difference(path, abs(x - y), f"recorded {a!r}, live {b!r}"))
        return
    if type(a) is not type(b) and _type_name(a) != _type_name(b):
        out.append(Difference(path, None, f"recorded a {type(a).__name__}, live a "
                              f"{type(b).__name__}"))
        return
    if _state_of(a) is not a:
        _walk(_state_of(a), _state_of(b), path, exact, out, depth + 1)
        return
    try:
        equal = bool(a == b)
    except Exception:  # noqa: BLE001 - objects without a usable ==: compare their reprs
        equal = repr(a) == repr(b)
    if not equal:
        out.append(Difference(path, None, f"recorded {_short(a)}, live {_short(b)}"))


def _arrays(a: Any, b: Any, path: str, exact: bool, out: list[Difference]) -> None:
    import numpy as np

    x, y = _numpy(a), _numpy(b)
    if x is None or y is None or x.shape != y.shape or x.dtype != y.dtype:
        out.append(Difference(path, None, f"recorded {_describe(a)}, live {_describe(b)}"))
        return
    if x.dtype.kind not in "biufc":
        if not np.array_equal(x, y):
            out.append(Difference(path, None, "values differ"))
        return
    if np.array_equal(x, y, equal_nan=x.dtype.kind in "fc"):
        return
    diff = np.abs(x.astype(np.complex128 if x.dtype.kind == "c" else np.float64)
                  - y.astype(np.complex128 if y.dtype.kind == "c" else np.float64))
    worst = float(np.nanmax(diff)) if diff.size else 0.0
    if not exact and x.dtype.kind in "fc" and np.allclose(x, y, rtol=REL_TOL, atol=ABS_TOL,
                                                           equal_nan=True):
        return
    count = int(np.count_nonzero(diff))
    out.append(Difference(path, worst, f"{count} of {x.size} elements differ"))


def _numpy(x: Any) -> Any:
    import numpy as np

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        t = x.detach().cpu()
        return t.float().numpy() if t.dtype == torch.bfloat16 else t.numpy()
    if isinstance(x, (np.ndarray, np.generic)):
        return np.asarray(x)
    return None


def _is_array(x: Any) -> bool:
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    return (np is not None and isinstance(x, (np.ndarray, np.generic))) or (
        torch is not None and isinstance(x, torch.Tensor))


def _type_name(x: Any) -> str:
    """A type's qualified name: a class of the script pickled by value in the recording is
    another class object than the live one, of the same name."""
    t = type(x)
    return f"{t.__module__}.{t.__qualname__}"


def _number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool)


def _state_of(obj: Any) -> Any:
    """What an object's state is made of: a random generator's state, an object's
    attributes; ``obj`` itself for anything else."""
    if hasattr(obj, "bit_generator"):  # numpy.random.Generator
        return obj.bit_generator.state
    if hasattr(obj, "get_state") and hasattr(obj, "set_state"):  # numpy RandomState
        return obj.get_state()
    if hasattr(obj, "getstate") and hasattr(obj, "setstate"):  # random.Random
        return obj.getstate()
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return vars(obj)
    return obj


def _describe(x: Any) -> str:
    shape, dtype = getattr(x, "shape", None), getattr(x, "dtype", None)
    return f"{type(x).__name__} {tuple(shape) if shape is not None else ''} {dtype or ''}"


def _names(keys: set) -> str:
    return ", ".join(sorted(map(str, keys))) or "none"


def _short(x: Any) -> str:
    text = repr(x)
    return text if len(text) <= 60 else text[:57] + "..."

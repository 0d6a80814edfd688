"""Copying, serializing and restoring in place the objects enrolled for checkpoints.

Three kinds of object, told apart without importing torch unless the user already has:

- ``torch``: anything with ``state_dict`` and ``load_state_dict`` (modules, optimizers, LR
  schedulers). The state dict is copied with every tensor cloned to CPU memory and saved with
  ``torch.save``; restore is ``load_state_dict``. For a module, the parameters' ``.grad`` are
  captured and restored too (a state dict has none). What a state dict leaves out otherwise
  (attributes set on a module, non-persistent buffers) is not restored: replay's cross-check
  (``docs/replay.md``) is what catches a statement that depends on it.
- ``numpy``: an ``ndarray``, copied, saved with ``numpy.save``; restored by assignment into the
  same array (shape and dtype must match).
- ``pickle``: everything else, pickled with cloudpickle at capture time; restored in place for
  ``list``, ``dict``, ``set``, ``bytearray`` and objects with a ``__dict__`` (pandas objects
  included).

The RNG states that decide what the next iteration computes are captured beside them: Python's
``random``, numpy's legacy global generator, and torch's CPU and (when initialized) CUDA
generators, each only when its module is already imported. Capturing never draws from them.
"""

from __future__ import annotations

import io
import pickle
import random
import sys
from typing import Any

from flordb.errors import NotRestorableError

RNG_KEY = "__rng__"
_IMMUTABLE = (int, float, complex, str, bytes, tuple, frozenset, bool, type(None))


def kind_of(obj: Any) -> str:
    """``"torch"``, ``"numpy"`` or ``"pickle"``; raises for objects that cannot be restored."""
    if hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict"):
        return "torch"
    np = sys.modules.get("numpy")
    if np is not None and isinstance(obj, np.ndarray):
        return "numpy"
    if isinstance(obj, _IMMUTABLE):
        raise NotRestorableError(
            f"a {type(obj).__name__} cannot be restored in place: enroll a mutable object "
            "(a dict, a list, an object with attributes) that holds it")
    return "pickle"


#: Key of a captured torch module's state that also holds its parameters' gradients.
_GRADS = "__flordb_grads__"
#: Suffix of the checkpoint entry that stores a module's gradients beside its state dict
#: (which stays a plain state dict on disk, loadable with ``torch.load``).
GRADS_SUFFIX = "#grad"


def split_grads(name: str, kind: str, captured: Any) -> list[tuple[str, str, Any]]:
    """``(name, kind, state)`` entries to store for one capture: a module's state dict and,
    under ``name + GRADS_SUFFIX``, its gradients."""
    if kind == "torch" and isinstance(captured, dict) and _GRADS in captured:
        return [(name, kind, captured["state"]),
                (name + GRADS_SUFFIX, kind, captured[_GRADS])]
    return [(name, kind, captured)]


def join_grads(states: dict[str, tuple[str, Any]], name: str) -> tuple[str, Any]:
    """The ``(kind, captured)`` of ``name`` in stored ``states``, its gradients put back."""
    kind, captured = states[name]
    grads = states.get(name + GRADS_SUFFIX)
    if grads is not None:
        captured = {_GRADS: grads[1], "state": captured}
    return kind, captured


def capture(obj: Any, kind: str) -> Any:
    """A copy of ``obj``'s state, independent of later training steps.

    A torch module's capture adds its parameters' ``.grad`` (``None`` included) to the state
    dict, which holds none: a statement that reads gradients after a skipped inner loop (a
    gradient norm at the head of an epoch) must see the gradients that loop left behind.
    """
    if kind == "torch":
        state = _copy_tree(obj.state_dict())
        if hasattr(obj, "named_parameters"):
            state = {_GRADS: {name: None if p.grad is None else _copy_tree(p.grad)
                              for name, p in obj.named_parameters()}, "state": state}
        return state
    if kind == "numpy":
        return obj.copy()
    import cloudpickle

    return cloudpickle.dumps(obj)


def _copy_tree(value: Any) -> Any:
    """Deep copy of a state dict: tensors cloned to CPU, containers rebuilt, scalars shared."""
    if isinstance(value, dict):
        return type(value)((k, _copy_tree(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_tree(v) for v in value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach()
        return t.clone() if t.device.type == "cpu" else t.to("cpu")
    import copy

    return copy.deepcopy(value)


def serialize(state: Any, kind: str) -> bytes:
    """Bytes of a captured state."""
    if kind == "torch":
        import torch

        buf = io.BytesIO()
        torch.save(state, buf)
        return buf.getvalue()
    if kind == "numpy":
        import numpy as np

        buf = io.BytesIO()
        np.save(buf, state, allow_pickle=state.dtype.hasobject)
        return buf.getvalue()
    if kind == "rng":
        return pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
    return state  # pickle: captured as bytes already


def deserialize(data: bytes, kind: str) -> Any:
    """The captured state back from :func:`serialize`'s bytes."""
    if kind == "torch":
        import torch

        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
    if kind == "numpy":
        import numpy as np

        return np.load(io.BytesIO(data), allow_pickle=True)
    return pickle.loads(data)


def restore(obj: Any, state: Any, kind: str) -> None:
    """Put ``state`` back into ``obj`` in place (the script keeps its references)."""
    if kind == "torch":
        grads = None
        if isinstance(state, dict) and _GRADS in state:
            grads, state = state[_GRADS], state["state"]
        obj.load_state_dict(state)
        if grads is not None:
            for name, p in obj.named_parameters():
                g = grads.get(name)
                p.grad = None if g is None else g.to(device=p.device, dtype=p.dtype)
        return
    if kind == "numpy":
        if obj.shape != state.shape or obj.dtype != state.dtype:
            raise NotRestorableError(
                f"array changed shape/dtype since the checkpoint: {obj.shape} {obj.dtype} vs "
                f"{state.shape} {state.dtype}")
        obj[...] = state
        return
    saved = pickle.loads(state) if isinstance(state, bytes) else state
    if isinstance(obj, (list, bytearray)):
        obj[:] = saved
    elif isinstance(obj, dict):
        obj.clear()
        obj.update(saved)
    elif isinstance(obj, set):
        obj.clear()
        obj.update(saved)
    elif hasattr(obj, "bit_generator"):  # numpy.random.Generator
        obj.bit_generator.state = saved.bit_generator.state
    elif hasattr(obj, "get_state") and hasattr(obj, "set_state"):  # numpy RandomState
        obj.set_state(saved.get_state())
    elif hasattr(obj, "getstate") and hasattr(obj, "setstate"):  # random.Random
        obj.setstate(saved.getstate())
    elif hasattr(obj, "__dict__"):
        obj.__dict__.clear()
        obj.__dict__.update(saved.__dict__)
    else:
        raise NotRestorableError(f"cannot restore a {type(obj).__name__} in place")


def capture_rng() -> dict[str, Any]:
    """The states of the random generators the user's code may draw from."""
    states: dict[str, Any] = {"random": random.getstate()}
    np = sys.modules.get("numpy")
    if np is not None:
        states["numpy"] = np.random.get_state()
    torch = sys.modules.get("torch")
    if torch is not None:
        states["torch"] = torch.get_rng_state()
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def restore_rng(states: dict[str, Any]) -> None:
    """Set the generators back to ``states`` (from :func:`capture_rng`)."""
    random.setstate(states["random"])
    if "numpy" in states:
        import numpy as np

        np.random.set_state(states["numpy"])
    if "torch" in states:
        import torch

        torch.set_rng_state(states["torch"])
        if "cuda" in states:
            torch.cuda.set_rng_state_all(states["cuda"])


def estimated_bytes(obj: Any, kind: str) -> int:
    """Bytes a capture of ``obj`` copies, without copying (0 when unknown before pickling)."""
    if kind == "torch":
        grads = sum(_nbytes(p.grad) for p in obj.parameters() if p.grad is not None) \
            if hasattr(obj, "parameters") else 0
        return _nbytes(obj.state_dict()) + grads
    if kind == "numpy":
        return int(obj.nbytes)
    return 0


def captured_bytes(state: Any) -> int:
    """Bytes held by a captured state."""
    return len(state) if isinstance(state, bytes) else _nbytes(state)


def _nbytes(state: Any) -> int:
    if hasattr(state, "nbytes"):
        return int(state.nbytes)
    if hasattr(state, "element_size") and hasattr(state, "nelement"):
        return int(state.element_size() * state.nelement())
    if isinstance(state, dict):
        return sum(_nbytes(v) for v in state.values())
    if isinstance(state, (list, tuple)):
        return sum(_nbytes(v) for v in state)
    return 0

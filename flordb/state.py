"""Copying, serializing and restoring in place the objects enrolled for checkpoints.

Three kinds of object, told apart without importing torch unless the user already has:

- ``torch``: anything with ``state_dict`` and ``load_state_dict`` (modules, optimizers, LR
  schedulers). The state dict is copied with every tensor cloned to CPU memory and saved with
  ``torch.save``; restore is ``load_state_dict``. For a module, the parameters' ``.grad`` are
  captured and restored too (a state dict has none), and so is what the module carries
  outside its state dict: plain-data attributes of it and its submodules (a step counter, a
  flag) and non-persistent buffers (:func:`module_extras`). State in objects nobody enrolled
  is not restored: replay checks itself against the recording (``docs/replay.md``).
- ``numpy``: an ``ndarray``, copied, saved with ``numpy.save``; restored by assignment into the
  same array (shape and dtype must match).
- ``pickle``: everything else, pickled with cloudpickle at capture time; restored in place for
  ``list``, ``dict``, ``set``, ``bytearray`` and objects with a ``__dict__`` (pandas objects
  included). A reference from such an object to another enrolled object (an EMA helper's
  ``model``, a scheduler's ``optimizer``) is pickled as that object's enrolled name and
  restored as the live object, never as a copy of it (:class:`Enrolled`).

The RNG states that decide what the next iteration computes are captured beside them: Python's
``random``, numpy's legacy global generator, and torch's CPU and (when initialized) CUDA
generators, each only when its module is already imported. Capturing never draws from them.
"""

from __future__ import annotations

import copy
import io
import pickle
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flordb.errors import NotRestorableError

RNG_KEY = "__rng__"
_IMMUTABLE = (int, float, complex, str, bytes, tuple, frozenset, bool, type(None))
#: Types whose values are shared, never copied.
_SCALARS = frozenset({bool, int, float, complex, str, bytes, type(None)})


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


#: Keys of a captured torch module's state beside its state dict: the parameters' gradients
#: and what else the module carries (see :func:`module_extras`).
_GRADS = "__flordb_grads__"
_EXTRAS = "__flordb_extras__"
#: Suffixes of the checkpoint entries that store a module's gradients and its extras beside its
#: state dict (which stays a plain state dict on disk, loadable with ``torch.load``).
GRADS_SUFFIX = "#grad"
EXTRAS_SUFFIX = "#extras"
_SIDE = ((_GRADS, GRADS_SUFFIX), (_EXTRAS, EXTRAS_SUFFIX))


def split_entries(name: str, kind: str, captured: Any) -> list[tuple[str, str, Any]]:
    """``(name, kind, state)`` entries to store for one capture: a module's state dict and,
    under ``name + GRADS_SUFFIX`` and ``name + EXTRAS_SUFFIX``, its gradients and extras."""
    if kind == "torch" and isinstance(captured, dict) and "state" in captured \
            and _GRADS in captured:
        return [(name, kind, captured["state"])] + [
            (name + suffix, kind, captured[key]) for key, suffix in _SIDE if key in captured]
    return [(name, kind, captured)]


def join_entries(states: dict[str, tuple[str, Any]], name: str) -> tuple[str, Any]:
    """The ``(kind, captured)`` of ``name`` in stored ``states``, its side entries put back."""
    kind, captured = states[name]
    side = {key: states[name + suffix][1] for key, suffix in _SIDE if name + suffix in states}
    if side:
        captured = {**side, "state": captured}
    return kind, captured


def is_side_entry(name: str) -> bool:
    """Whether a checkpoint entry holds a module's gradients or extras, not an object."""
    return name.endswith(GRADS_SUFFIX) or name.endswith(EXTRAS_SUFFIX)


def capture(obj: Any, kind: str, enrolled: Mapping[str, Any] | None = None) -> Any:
    """A copy of ``obj``'s state, independent of later training steps.

    A torch module's capture adds its parameters' ``.grad`` (``None`` included), which its
    state dict does not hold (a gradient norm at the head of an epoch reads the gradients a
    skipped inner loop left), and its :func:`module_extras`. A pickled object's references to
    the other ``enrolled`` objects (name -> object) are pickled by name.
    """
    if kind == "torch":
        state = _copy_tree(obj.state_dict())
        if hasattr(obj, "named_parameters"):
            state = {_GRADS: {name: None if p.grad is None else _copy_tree(p.grad)
                              for name, p in obj.named_parameters()}, "state": state}
            if hasattr(obj, "named_modules"):
                state[_EXTRAS] = _copy_tree(module_extras(obj))
        return state
    if kind == "numpy":
        return obj.copy()
    return _pickle_by_name(obj, {id(o): n for n, o in (enrolled or {}).items() if o is not obj})


@dataclass(frozen=True)
class Enrolled:
    """Where a pickled object referred to another enrolled object, seen without the live
    objects (when a recorded state is compared with a live one)."""

    name: str


_PID = "flordb:enrolled"


def _pickle_by_name(obj: Any, names: dict[int, str]) -> bytes:
    import cloudpickle

    class ByName(cloudpickle.Pickler):
        def persistent_id(self, o: Any) -> Any:
            name = names.get(id(o))
            return None if name is None else (_PID, name)

    buf = io.BytesIO()
    (ByName if names else cloudpickle.Pickler)(buf, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    return buf.getvalue()


def unpickle(data: bytes, live: Mapping[str, Any] | None = None) -> Any:
    """A pickled capture loaded back; its references to enrolled objects resolve to the
    ``live`` objects of those names, or to :class:`Enrolled` markers when ``live`` is None."""

    class Loader(pickle.Unpickler):
        def persistent_load(self, pid: Any) -> Any:
            if not (isinstance(pid, tuple) and len(pid) == 2 and pid[0] == _PID):
                raise pickle.UnpicklingError(f"unknown persistent id {pid!r}")
            if live is None:
                return Enrolled(pid[1])
            if pid[1] not in live:
                raise NotRestorableError(f"the checkpoint refers to {pid[1]!r}, which is not "
                                         "enrolled now")
            return live[pid[1]]

    return Loader(io.BytesIO(data)).load()


def module_extras(module: Any) -> dict[str, dict[str, Any]]:
    """What a torch module carries outside its state dict, per submodule path: plain-data
    attributes (numbers, strings, flags, tensors and containers of them in ``__dict__``: a
    step counter, ``training``) under ``"attrs"`` and non-persistent buffers under
    ``"buffers"``."""
    attrs: dict[str, Any] = {}
    buffers: dict[str, Any] = {}
    for path, sub in module.named_modules():
        prefix = f"{path}." if path else ""
        for key, value in sub.__dict__.items():
            if key[0] != "_" and (type(value) in _SCALARS or _plain(value)):
                attrs[prefix + key] = value
        for key in getattr(sub, "_non_persistent_buffers_set", ()):
            buffer = sub._buffers.get(key)
            if buffer is not None:
                buffers[prefix + key] = buffer
    return {"attrs": attrs, "buffers": buffers}


def _plain(value: Any, depth: int = 0) -> bool:
    """Whether ``value`` is plain data: what a counter or flag is made of."""
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return True
    np, torch = sys.modules.get("numpy"), sys.modules.get("torch")
    if np is not None and isinstance(value, (np.ndarray, np.generic)):
        return True
    if torch is not None and isinstance(value, torch.Tensor):
        return not isinstance(value, torch.nn.Parameter)
    if depth >= 4:
        return False
    if isinstance(value, (list, tuple, set, frozenset)):
        return all(_plain(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, (str, int)) and _plain(v, depth + 1)
                   for k, v in value.items())
    return False


def _restore_extras(module: Any, extras: dict[str, dict[str, Any]]) -> None:
    subs = dict(module.named_modules())
    for group in ("attrs", "buffers"):
        for path, value in extras.get(group, {}).items():
            owner, _, key = path.rpartition(".")
            sub = subs.get(owner)
            if sub is None:
                continue  # a submodule the recording had and this version lacks
            if group == "buffers":
                live = sub._buffers.get(key)
                sub._buffers[key] = value.to(live.device) if live is not None else value
            else:
                live = getattr(sub, key, None)
                device = getattr(live, "device", None)
                value = copy.deepcopy(value)
                setattr(sub, key, value.to(device) if device is not None
                        and hasattr(value, "to") else value)


def _copy_tree(value: Any) -> Any:
    """Deep copy of a state dict: tensors cloned to CPU, containers rebuilt, scalars shared."""
    if type(value) in _SCALARS:
        return value
    if isinstance(value, dict):
        return type(value)((k, _copy_tree(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return type(value)(_copy_tree(v) for v in value)
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach()
        return t.clone() if t.device.type == "cpu" else t.to("cpu")
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
    if kind == "pickle":
        return data  # loaded when restored, where its references to enrolled objects resolve
    return pickle.loads(data)


def restore(obj: Any, state: Any, kind: str, enrolled: Mapping[str, Any] | None = None) -> None:
    """Put ``state`` back into ``obj`` in place (the script keeps its references); a pickled
    state's references to enrolled objects resolve to the live ``enrolled`` objects."""
    if kind == "torch":
        grads = None
        extras = None
        if isinstance(state, dict) and _GRADS in state:
            grads, extras, state = state[_GRADS], state.get(_EXTRAS), state["state"]
        obj.load_state_dict(state)
        if extras is not None:
            _restore_extras(obj, extras)
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
    saved = unpickle(state, enrolled or {}) if isinstance(state, bytes) else state
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

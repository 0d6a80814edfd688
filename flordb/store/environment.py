"""The environment a run executed in, as JSON de-duplicated by its hash."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import sys
from importlib import metadata


def fingerprint() -> str:
    """A cheap key that changes when the interpreter or an installed package changes.

    It hashes the interpreter and the modification times of the directories on ``sys.path``
    (installing or removing a distribution adds or removes entries in one of them), so a run
    can reuse the environment record of an earlier run without listing every distribution.
    """
    parts = [sys.executable, sys.version, str("torch" in sys.modules)]
    for entry in sys.path:
        try:
            parts.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def capture() -> tuple[str, str]:
    """``(sha256, json)`` of interpreter, platform, hardware and installed distributions.

    Environment variables are not part of it (they are recorded per run, credentials
    removed: :func:`flordb.store.redact.environment`).
    """
    packages = sorted(
        {(d.metadata["Name"] or "?").lower(): d.version for d in metadata.distributions()}.items()
    )
    env = {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "executable": sys.executable,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "accelerators": _accelerators(),
        "packages": dict(packages),
    }
    text = json.dumps(env, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), text


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _accelerators() -> dict:
    """CUDA as torch reports it, when the script has imported torch (never imported here).

    Devices are named only when the script has initialized CUDA itself: querying them would
    otherwise create a CUDA context in a process that may not want one.
    """
    torch = sys.modules.get("torch")
    if torch is None:
        return {}
    out: dict = {"torch": getattr(torch, "__version__", None),
                 "cuda": getattr(torch.version, "cuda", None)}
    try:
        out["cuda_available"] = bool(torch.cuda.is_available())
        if torch.cuda.is_initialized():
            out["devices"] = [torch.cuda.get_device_name(i)
                              for i in range(torch.cuda.device_count())]
    except Exception as exc:  # a broken driver must not stop the run; it is recorded
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out

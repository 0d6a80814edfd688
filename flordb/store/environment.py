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
    parts = [sys.executable, sys.version]
    for entry in sys.path:
        try:
            parts.append(f"{entry}:{os.stat(entry or '.').st_mtime_ns}")
        except OSError:
            continue
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def capture() -> tuple[str, str]:
    """``(sha256, json)`` of interpreter, platform and installed distributions.

    No environment variables are recorded, so no credential can leak through this record.
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
        "packages": dict(packages),
    }
    text = json.dumps(env, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), text

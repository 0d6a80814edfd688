"""The environment a run executed in, as JSON de-duplicated by its hash."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from importlib import metadata


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

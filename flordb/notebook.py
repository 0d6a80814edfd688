"""IPython and Jupyter: each executed cell that logged is committed as a run of its own.

After a cell runs, a run it started or continued is ended (``completed``, or ``failed`` when
the cell raised), so its values are durable and the next cell that logs starts a new run, as
re-running a training cell with new settings should. ``flor.arg`` values stay in effect for
the kernel's later runs (recorded in each) until a cell sets them again. ``--kwargs`` is not
parsed (the kernel's command line is not the user's). A run's filename is the notebook's path
when the kernel knows it.
"""

from __future__ import annotations

import os
import sys
from typing import Any

_HOOKED = "_flordb_post_run_cell"


def shell() -> Any:
    """The running IPython shell, or None outside IPython."""
    ipython = sys.modules.get("IPython")
    return ipython.get_ipython() if ipython is not None else None


def attach(runtime: Any) -> bool:
    """Commit ``runtime``'s run after every cell of the running shell; False outside IPython."""
    sh = shell()
    if sh is None:
        return False
    if not getattr(sh, _HOOKED, False):
        def after_cell(result: Any) -> None:
            failed = result.error_in_exec is not None or result.error_before_exec is not None
            runtime.end_cell(failed)

        sh.events.register("post_run_cell", after_cell)
        setattr(sh, _HOOKED, True)
    return True


def notebook_path() -> str | None:
    """The notebook's path as the kernel reports it (Jupyter sets ``__session__``)."""
    sh = shell()
    session = sh.user_ns.get("__session__") if sh is not None else None
    return session or os.environ.get("JPY_SESSION_NAME") or None

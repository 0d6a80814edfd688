"""Helpers that scripts written for FlorDB call as ``flor.utils.*``."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas


def latest(frame: pandas.DataFrame) -> pandas.DataFrame:
    """The rows of ``frame`` from its newest run: those whose ``tstamp`` is the largest."""
    if frame is None or frame.empty or "tstamp" not in frame:
        return frame
    return frame[frame["tstamp"] == frame["tstamp"].max()]

"""The pure parts of the replay child: slicing a series chunk to a unit's window."""

from __future__ import annotations

from array import array

from flordb.replaying import _slice_chunk
from flordb.store.writer import Chunk


def chunk(iters: list[int], vals: list[float]) -> Chunk:
    return Chunk("loss", 3, 7, "f8", len(iters), array("q", iters).tobytes(),
                 array("d", vals).tobytes())


def test_a_chunk_is_cut_to_the_window():
    (name, loop_id, seq, dtype, n, it_b, v_b), = _slice_chunk(
        chunk([0, 1, 2, 3, 4], [0.0, 0.5, 1.0, 1.5, 2.0]), 1, 3)
    assert (name, loop_id, seq, dtype, n) == ("loss", 3, 7, "f8", 2)
    assert list(array("q", it_b)) == [1, 2] and list(array("d", v_b)) == [0.5, 1.0]


def test_whole_and_empty_windows():
    whole = chunk([2, 3], [1.0, 2.0])
    assert _slice_chunk(whole, 0, 10) == [whole]
    assert _slice_chunk(whole, 5, 9) == []

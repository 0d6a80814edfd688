"""The where grammar: comparisons joined by and/or/not, over columns; never code."""

from __future__ import annotations

import pandas as pd
import pytest

from flordb.errors import WhereError
from flordb.store.where import select

RUNS = pd.DataFrame({"lr": [0.1, 0.01, 0.001, None], "epochs": [5, 3, 5, 5],
                     "opt": ["adam", "sgd", "adam", None], "done": [True, False, True, None],
                     "acc max": [0.9, 0.5, 0.95, 0.7]})


@pytest.mark.parametrize("where, rows", [
    ("lr > 0.005 and epochs >= 5", [0]),
    ("opt == 'adam' or epochs < 4", [0, 1, 2]),
    ("not done", [1]),  # the run without a value of done is neither
    ("done", [0, 2]),
    ("epochs in [3, 4]", [1]),
    ("opt not in ['sgd']", [0, 2]),
    ("0.001 <= lr < 0.1", [1, 2]),
    ("`acc max` >= 0.9 and lr != 0.1", [2]),
    ("lr > -1", [0, 1, 2]),  # a missing value never matches
])
def test_selects_the_right_rows(where, rows):
    assert select(RUNS, where).index.tolist() == rows


@pytest.mark.parametrize("where, why", [
    ("__import__('os').system('true')", "is not a comparison"),
    ("lr.__class__ == 1", "is not a column or a value"),
    ("nope > 1", "no column 'nope'"),
    ("lr +", "not an expression"),
    ("lr", "is not a condition"),  # a float column on its own
    ("epochs in 3", "'in' takes a column and a list"),
])
def test_anything_else_is_refused_by_name(where, why):
    with pytest.raises(WhereError, match="columns: lr, epochs"):
        try:
            select(RUNS, where)
        except WhereError as exc:
            assert why in str(exc), str(exc)
            raise


def test_a_text_in_a_column_is_a_substring_match():
    import pandas as pd

    from flordb.store.where import select

    frame = pd.DataFrame({"note": ["an alert", "calm", None, 3]})
    assert select(frame, "'alert' in note")["note"].tolist() == ["an alert"]
    assert select(frame, "'alert' not in note")["note"].tolist() == ["calm"]  # missing: no

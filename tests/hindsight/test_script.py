"""One model of a script: flordb's calls recognised by what they name, however imported."""

from __future__ import annotations

import libcst as cst
import pytest

from flordb.errors import ParseError
from flordb.hindsight.cst_tree import walk
from flordb.hindsight.script import Script


def calls(source: str) -> list[tuple[str, str | None]]:
    s = Script(source)
    return [(cst.Module([]).code_for_node(n.func), s.flor_function(n))
            for n in walk(s.module) if isinstance(n, cst.Call)]


def test_every_import_form_is_recognised():
    assert calls("import flordb as flor\nflor.log('a', 1)\n") == [("flor.log", "log")]
    assert calls("import flor\nflor.loop('e', r)\n") == [("flor.loop", "loop")]
    assert calls("from flordb import log as record\nrecord('a', 1)\n") == [("record", "log")]
    assert calls("from flor import Flor\nfor x in Flor.loop(xs): pass\n") == \
        [("Flor.loop", "loop")]
    assert calls("import flordb\nflordb.arg('lr', 0.1)\n") == [("flordb.arg", "arg")]


def test_names_that_are_not_flordb_are_not_its_calls():
    assert calls("flor = Logger()\nflor.log('a', 1)\n") == [("Logger", None), ("flor.log", None)]
    assert calls("import flordb as flor\n\ndef f(flor):\n    flor.log('a', 1)\n") == \
        [("flor.log", None)]  # a parameter shadows the module inside the function
    assert calls("import numpy as np\nnp.log(2)\n") == [("np.log", None)]


def test_a_node_made_after_the_parse_is_recognised_by_the_imports():
    s = Script("import flordb as flor\nfrom flordb import log as record\n")
    made = cst.parse_expression("flor.log('a', 1)")
    assert isinstance(made, cst.Call) and s.flor_function(made) == "log"
    other = cst.parse_expression("record('b', 2)")
    assert isinstance(other, cst.Call) and s.flor_function(other) == "log"
    assert s.module_aliases == {"flor"} and s.log_names == {"record"}


def test_a_source_that_does_not_parse_is_one_line():
    with pytest.raises(ParseError, match="the old version does not parse"):
        Script("for x in :\n", "the old version")

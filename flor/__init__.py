"""``import flor`` is ``import flordb``: the same module object, the same runtime."""

import sys

import flordb

sys.modules[__name__] = flordb

"""Old name of :mod:`bitnet.compile.aot` (the same module object, so that patching
either patches both); new code imports :mod:`bitnet.compile.aot`."""

import sys

from .compile import aot as _aot

sys.modules[__name__] = _aot

"""Old name of :mod:`bitnet.compile.registry` (the same module object); new code
imports :mod:`bitnet.compile.registry`."""

import sys

from ..compile import registry as _registry

sys.modules[__name__] = _registry

"""The kernels' own report of the instruction-set path they were compiled for.

:func:`bitnet.kernels.isa.active` calls ``isa_code`` through the kernel registry, so
it asks whichever kernels are in use (the ahead-of-time module or numba's JIT) and
layer preparation always re-tiles weights for the block widths those kernels have.
"""

from __future__ import annotations

from ..compile.options import jit
from ._common import isa_code_const


@jit()
def _isa_code_kernel(x):
    """Code of the compiled path (see :data:`bitnet.kernels.isa.PATHS`); ``x`` unused."""
    return isa_code_const(x)

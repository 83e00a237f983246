"""Old home of the numba options and the thread count, kept so that code written
against it keeps working: the options are now in :mod:`bitnet.compile.options`, the
thread count in :mod:`bitnet.parallel`. New code imports those."""

from .compile.options import JIT_OPTIONS, jit  # noqa: F401
from .parallel import ensure_threads, get_num_threads, set_num_threads  # noqa: F401

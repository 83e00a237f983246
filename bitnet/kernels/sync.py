"""Two tiny kernels the thread pool (:mod:`bitnet._threads`) waits and signals with.

Both run without the GIL, so a thread spinning in :func:`_spin_until` leaves the GIL
to the thread it waits for; the flags are int64 arrays read and written atomically
(acquire / release), so a kernel's output rows written before a release store are
visible to the thread whose acquire load sees that store.
"""

from __future__ import annotations

from ..compile.options import jit
from ._common import cpu_relax, load_acquire, os_yield, store_release

#: tries between two ``sched_yield`` calls of a spin (a try is ~10–70 ns with its pause)
YIELD_EVERY = 512


@jit()
def _spin_until(flags, i, value, spins):
    """Spin until ``flags[i] >= value``, trying at most ``spins`` times; 1 if reached,
    else 0 (the caller then blocks on a condition variable instead). Every
    :data:`YIELD_EVERY` tries the core is offered to other threads: on a machine whose
    cores are busy the OS may run the spinning thread and the one it waits for on the
    same core, and a spin that never yields would hold that thread off for its whole
    time slice."""
    for t in range(spins):
        if load_acquire(flags, i) >= value:
            return 1
        if t % YIELD_EVERY == YIELD_EVERY - 1:
            os_yield(0)
        else:
            cpu_relax(0)
    return 0


@jit()
def _publish(flags, i, value):
    """``flags[i] = value`` with release ordering."""
    store_release(flags, i, value)

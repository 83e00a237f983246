"""Test and benchmark material, not part of the engine: random-parameter workloads
(:mod:`.workloads`, the reference models of docs/design.md §4), a random digits-shaped
model (:mod:`.digits`) and the binary roofline microbenchmark (:mod:`.roofline`).

Importing this package imports nothing else (the roofline imports numba when used).
"""


def values_at_one_and_two_threads(graph, x, outputs=False):
    """Every value of ``graph.run(x)`` by name, run with one thread and with two:
    ``(values_1, values_2)``, or ``(y_1, values_1, y_2, values_2)`` with the outputs when
    ``outputs``; the thread count is restored afterwards."""
    from ..parallel import get_num_threads, set_num_threads

    old = get_num_threads()
    try:
        set_num_threads(1)
        y1, v1 = graph.run(x, return_values=True)
        set_num_threads(2)
        y2, v2 = graph.run(x, return_values=True)
    finally:
        set_num_threads(old)
    return (y1, v1, y2, v2) if outputs else (v1, v2)


def cpu_flags():
    """The CPU flags ``/proc/cpuinfo`` lists for the first processor (a set), or None
    where there is no such file (tests skip forced targets the CPU cannot run)."""
    from pathlib import Path

    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return None

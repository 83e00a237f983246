"""Test and benchmark material, not part of the engine: random-parameter workloads
(:mod:`.workloads`, the reference models of docs/design.md §4), a random digits-shaped
model (:mod:`.digits`) and the binary roofline microbenchmark (:mod:`.roofline`).

Importing this package imports nothing else (the roofline imports numba when used).
"""

"""Evaluation scripts for the bundled model: the speech gate, robustness, calibration.

Run from the repository root, e.g. ``python -m evaluation.gate`` or
``python -m evaluation.robustness``. They read FSDD from ``../shared/data/fsdd`` (or
``BITNET_FSDD``) and write JSON, markdown tables and plots into ``docs/``. They are not
part of the engine (``bitnet/`` never imports them).
"""

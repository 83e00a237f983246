"""Compiling the kernels, in one package.

* :mod:`.options` – numba's options for every kernel (:func:`jit`) and the
  ``BITNET_AOT`` switch;
* :mod:`.cachedir` – the one cache-directory resolver (``BITNET_CACHE_DIR``);
* :mod:`.table` – every compiled kernel by name with its ahead-of-time signature
  (the ops' own :attr:`bitnet.ops.Op.kernels` plus the thread pool's and the ISA
  probe's);
* :mod:`.aot` – the ahead-of-time module: build (``bitnet compile``), key, load;
* :mod:`.registry` – a kernel by name: the ahead-of-time function, else numba's JIT;
* :mod:`.notice` – the first-run notice and the first graph run.

Layering (no cycles): options, cachedir ← table ← aot ← registry ← notice.
Importing this package imports nothing else; with the ahead-of-time module and one
thread a process never imports numba.
"""

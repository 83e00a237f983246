"""Kernels of bitnet, one module per op, each beside its NumPy reference.

* :mod:`.reference` – slow, obviously-correct NumPy versions: the specification.
* :mod:`.bconv` – binary convolution / binary dense (XNOR-popcount).
* :mod:`.qconv` – first layer, k-bit levels × binary weights.
* :mod:`.pool` – max / average / global average pooling on bits and reals.
* :mod:`.sign` – the ``sign`` and ``quantize`` ops.
* :mod:`.head` – float32 dense head, softmax, argmax.
* :mod:`.geometry` – output sizes and padding.
* :mod:`.roofline` – the xor+popcount+add roofline microbenchmark.
* :mod:`._common` – popcount and the explicit-vector block intrinsics the kernels share.

Importing this package imports neither numba nor any kernel; import the modules.
"""

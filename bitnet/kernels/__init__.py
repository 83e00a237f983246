"""Kernels of bitnet, one module per op, each beside its NumPy reference.

* :mod:`.reference` – slow, obviously-correct NumPy versions: the specification.
* :mod:`.bconv` – binary convolution / binary dense (XNOR-popcount).
* :mod:`.qconv` – first layer, k-bit levels × binary weights.
* :mod:`.pool` – max / average / global average pooling on bits and reals.
* :mod:`.sign` – the ``sign`` and ``quantize`` ops.
* :mod:`.head` – float32 dense head on packed bits.
* :mod:`.geometry` – output sizes and padding.
* :mod:`.fused` – fused layer chains (bconv→avgpool→sign, quantize→qconv).
* :mod:`._common` – popcount and the explicit-vector block intrinsics the kernels share.

Pure Python, no numba (what a model needs to run on the ahead-of-time kernels):

* :mod:`._registry` – old name of :mod:`bitnet.compile.registry` (kernels by name).
  The compile machinery is :mod:`bitnet.compile`; the op definitions :mod:`bitnet.ops`.
* :mod:`.bconv_layer`, :mod:`.qconv_layer`, :mod:`.fused_layer` – layer preparation
  (weight re-tiling, parameter vectors) for the kernels of the modules above.
* :mod:`.layout` – block widths, group sizes, threshold bounds.

Importing this package imports neither numba nor any kernel; import the modules.
"""

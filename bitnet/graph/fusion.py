"""Fusion: chains of layers replaced by one fused kernel in the run plan.

The patterns belong to the ops (:attr:`bitnet.ops.Op.fusions`, the chains that start
at that op, tried in order); this module only walks the layer list and asks the op
of each layer whether a chain starts there. A chain is fused only where nothing but
the next layer of the chain reads each intermediate value and none of them is the
graph output; the fused kernels do the same operations in the same order as the
unfused ones (bit-identical results, :mod:`bitnet.kernels.fused`). Fused kernels are
serial, so a pattern fuses a convolution only where it would stay serial with any
thread count.
"""

from __future__ import annotations

__all__ = ["plan"]


def plan(prepared, steps, slots, out):
    """The run plans with fused chains: ``(serial plan, parallel plan, fused names)``.

    ``prepared``: the prepared layers (``.info``, ``.fuse``, ``.step_par``, ``.op``);
    ``steps``: per layer ``(step, step_par, ref, input slots, output slot)``;
    ``slots``: value name -> slot; ``out``: the graph output name.
    """
    readers = {}
    for p in prepared:
        for name in p.info.inputs:
            readers[name] = readers.get(name, 0) + 1

    def private(p, nxt):
        # the output of p is read by nxt only, and is not the graph output
        o = p.info.output
        return o != out and readers.get(o, 0) == 1 and nxt.info.inputs == [o]

    fast, fast_par, fused = [], [], []
    i = 0
    while i < len(prepared):
        chain = None
        for match in prepared[i].op.fusions:
            chain = match(prepared, i, private)
            if chain is not None:
                break
        if chain is not None:
            step, n = chain
            first, last = prepared[i], prepared[i + n - 1]
            ins, o = tuple(slots[v] for v in first.info.inputs), slots[last.info.output]
            if n >= 2 and last.info.op == "sign" and prepared[i + n - 2].info.op in ("maxpool", "add"):
                # [add →] maxpool → sign, add → sign: the real values are kept too
                o = (slots[prepared[i + n - 2].info.output], o)
                ins = ins if len(ins) > 1 else ins * 2     # two inputs: the tuple branch
            fast.append((step, ins, o))
            fast_par.append((step, ins, o))
            fused.append(tuple(p.info.name for p in prepared[i:i + n]))
            i += n
            continue
        s = steps[i]
        fast.append((s[0], s[3], s[4]))
        fast_par.append((s[1], s[3], s[4]))
        i += 1
    return tuple(fast), tuple(fast_par), fused

"""Output sizes and padding of convolutions and pools: written once, used everywhere.

``same`` padding (binary convs pad with +1, ``qconv`` with level 0): the output has
``ceil(H / stride)`` rows; the rows padded above are ``(kh - 1) // 2`` and whatever the
last window needs below. For odd kernels this is exactly PyTorch's symmetric
``padding=kh // 2`` (``Conv2d(..., padding=1)`` for 3×3, any stride), and for stride 1
it is PyTorch's ``padding="same"`` for any kernel. Same for columns.

``valid``: ``floor((H - kh) / stride) + 1`` rows, no padding; needs ``H >= kh``.
"""

from __future__ import annotations

__all__ = ["conv_geometry", "pool_geometry"]


def conv_geometry(h: int, w: int, kernel, stride, padding: str):
    """Return ``(h_out, w_out, pad_top, pad_left)`` of a convolution.

    Raises ``ValueError`` (callers turn it into their own error) when the output
    would be empty.
    """
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in stride)
    if padding == "same":
        return -(-h // sh), -(-w // sw), (kh - 1) // 2, (kw - 1) // 2
    if padding == "valid":
        if h < kh or w < kw:
            raise ValueError(f"a {kh}x{kw} 'valid' window does not fit an input of {h}x{w}")
        return (h - kh) // sh + 1, (w - kw) // sw + 1, 0, 0
    raise ValueError(f"padding must be 'same' or 'valid', got {padding!r}")


def pool_geometry(h: int, w: int, kernel, stride):
    """Return ``(h_out, w_out)`` of a ``valid`` pool."""
    kh, kw = (int(k) for k in kernel)
    sh, sw = (int(s) for s in stride)
    if h < kh or w < kw:
        raise ValueError(f"a {kh}x{kw} pool window does not fit an input of {h}x{w}")
    return (h - kh) // sh + 1, (w - kw) // sw + 1

"""Linear layers with their weights packed once for oneDNN, for the transformers engine on a CPU.

A plain `nn.Linear` on a CPU multiplies through MKL's sgemm, which at the few rows a decode step has (1 to 16)
runs far below the memory bandwidth: measured on 2 cores (bench/RESULTS.md, "Packed weights"), a 896x4864 fp32
projection took 1.3 ms for 1 row and 2.8 ms for 8 (MKL's own pre-packed GEMM did no better), while the same
weight packed once for oneDNN (`torch.ops.mkldnn._reorder_linear_weight`) took 0.7 ms and 1.0 ms. A decode
step of the 0.5B model took 97 ms instead of 126 for one row and 175 ms instead of 313 for eight (1.3x and 1.8x);
the prefill (hundreds of rows) is unchanged.

Only exact `nn.Linear` layers (not quantized or LoRA subclasses) with fp32 weights on the CPU are packed (the
engine's CPU dtype);
the plain weight is dropped (an inference-only copy: the engine never trains or saves), unless another module
shares it (Qwen's output layer is its embedding: the 0.5B then holds 545 MB more). The result is the same
matrix product summed in another order: a few units in the last place per layer, which can change which token is
most likely only where two are within that of each other.
"""

from __future__ import annotations

import functools


def packable() -> bool:
    """Whether this torch can pack linear weights for oneDNN (a CPU build with mkldnn)."""
    import torch

    return bool(torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
                and hasattr(torch.ops.mkldnn, "_linear_pointwise"))


def pack_linears(model, rows_hint: int = 8) -> int:
    """Replace each plain `nn.Linear` of `model` (fp32, on the CPU) by a `PackedLinear`; returns how many.

    `rows_hint`: the rows oneDNN picks its layout for (any number of rows works)."""
    import torch

    packed, count = packed_linear_class(), 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if (type(child) is torch.nn.Linear and child.weight.device.type == "cpu"
                    and child.weight.dtype == torch.float32):
                setattr(module, name, packed(child, rows_hint))
                count += 1
    return count


@functools.cache
def packed_linear_class():
    """The `PackedLinear` module class (made on first use, so importing this module imports no torch)."""
    import torch

    class PackedLinear(torch.nn.Module):
        """`nn.Linear`'s forward on a weight packed once (inference only: no gradient flows to the weight)."""

        def __init__(self, linear: torch.nn.Linear, rows_hint: int):
            super().__init__()
            self.in_features, self.out_features = linear.in_features, linear.out_features
            weight = linear.weight.detach()
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight, rows_hint)
            self.bias = None if linear.bias is None else linear.bias.detach()

        def forward(self, x):
            return torch.ops.mkldnn._linear_pointwise(x.contiguous(), self.packed, self.bias, "none", [], "")

        def extra_repr(self) -> str:
            return f"in_features={self.in_features}, out_features={self.out_features}, packed for oneDNN"

    return PackedLinear

"""Linear layers packed once for oneDNN (serving/engines/packed.py): the same products, the same answers."""

import asyncio

import pytest
import torch

from serving.engines.base import SamplingParams
from serving.engines.packed import pack_linears, packable, packed_linear_class

pytestmark = pytest.mark.skipif(not packable(), reason="this torch has no oneDNN (mkldnn) linear kernels")


@pytest.mark.parametrize("rows", [1, 3, 8, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_a_packed_layer_computes_what_the_linear_layer_does(rows, bias):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 160, bias=bias)
    packed = packed_linear_class()(linear, 8)
    for x in (torch.randn(rows, 96), torch.randn(2, rows, 96), torch.randn(rows, 2, 96).transpose(0, 1)):
        want = linear(x)
        got = packed(x)
        assert got.shape == want.shape
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_only_plain_linear_layers_on_the_cpu_are_packed():
    class Lora(torch.nn.Linear):  # a subclass (peft's and bitsandbytes' layers are): its forward is not Linear's
        def forward(self, x):
            return super().forward(x) * 2

    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.ReLU(), Lora(8, 8),
                                torch.nn.Sequential(torch.nn.Linear(8, 4)), torch.nn.Linear(4, 4).half())
    assert pack_linears(model) == 2
    kinds = [type(m).__name__ for m in (model[0], model[2], model[3][0], model[4])]
    assert kinds == ["PackedLinear", "Lora", "PackedLinear", "Linear"]


def test_the_engine_packs_its_model_and_answers_as_the_unpacked_one(merged_model):
    from serving.engines.hf import TransformersEngine

    packed = TransformersEngine(merged_model, max_batch=1)
    plain = TransformersEngine(merged_model, max_batch=1, pack_weights=False)
    assert packed.packed > 0 and plain.packed == 0
    assert not any(type(m) is torch.nn.Linear for m in packed.model.modules())
    params = SamplingParams(max_new_tokens=24)

    async def answers(engine):
        return [(await engine.generate([{"role": "user", "content": q}], params)).text
                for q in ("How long is the warranty on lamps?", "退货需要多长时间？", "Do you ship abroad?")]

    assert asyncio.run(answers(packed)) == asyncio.run(answers(plain))

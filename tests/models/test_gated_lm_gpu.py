"""GatedLM on CUDA (Triton kernels) against the same model on CPU (torch kernels). Run with -m gpu."""

from __future__ import annotations

import pytest
import torch
from gated_lm_helpers import left_pad, make_model

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

MIXED = ["gla", "attn", "slstm", "gla"]


def _padded_batch(lengths: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return left_pad([torch.randint(3, 97, (n,), generator=gen).tolist() for n in lengths])


@pytest.mark.parametrize("lengths", [(20, 7, 13), (150, 90)])  # the second crosses into chunk_gla (> 64)
def test_cuda_forward_and_loss_match_cpu(lengths):
    torch.backends.cuda.matmul.allow_tf32 = False
    cpu = make_model(MIXED, dtype=torch.float32)
    gpu = make_model(MIXED, dtype=torch.float32).cuda()
    ids, mask = _padded_batch(lengths)
    ref = cpu(ids, attention_mask=mask, labels=ids)
    out = gpu(ids.cuda(), attention_mask=mask.cuda(), labels=ids.cuda())
    real = mask.bool()
    torch.testing.assert_close(out.logits.cpu()[real], ref.logits[real], rtol=2e-3, atol=2e-3)
    out.loss.backward()
    ref.loss.backward()
    for (name, p_gpu), (_, p_cpu) in zip(gpu.named_parameters(), cpu.named_parameters()):
        torch.testing.assert_close(p_gpu.grad.cpu(), p_cpu.grad, rtol=5e-3, atol=5e-3, msg=name)


def test_cuda_generate_matches_cpu_logits_and_runs_in_bfloat16():
    cpu = make_model(MIXED, dtype=torch.float32)
    gpu = make_model(MIXED, dtype=torch.float32).cuda()
    ids, mask = _padded_batch(tuple(range(3, 67, 2)))  # 32 left-padded rows
    kwargs = dict(max_new_tokens=8, do_sample=False, return_dict_in_generate=True, output_logits=True)
    ref = cpu.generate(ids, attention_mask=mask, **kwargs)
    out = gpu.generate(ids.cuda(), attention_mask=mask.cuda(), **kwargs)
    torch.testing.assert_close(out.logits[0].cpu(), ref.logits[0], rtol=2e-3, atol=2e-3)
    bf16 = make_model(MIXED, dtype=torch.bfloat16).cuda()
    seqs = bf16.generate(ids.cuda(), attention_mask=mask.cuda(), max_new_tokens=8, do_sample=True)
    assert seqs.shape == (32, ids.shape[1] + 8) and int(seqs.max()) < 97

"""The hybrid input's algebra against hand-computed values (deep notes §2.2, §2.8)."""

from __future__ import annotations

import pytest
import torch

from reasonkit.hrpo.gate import GATE_C, HybridInput, hidden_share, lambda_init, project_distribution


@pytest.mark.parametrize("u", [0.5, 0.9, 0.99, 0.999])
def test_a_equals_u_at_r_one_when_the_init_range_is_a_point(u):
    mixer = HybridInput(16, r_min=u, r_max=u).double()
    with torch.no_grad():  # r = σ(W e + b) = 1: a huge bias
        mixer.gate_r.weight.zero_()
        mixer.gate_r.bias.fill_(100.0)
    a, _ = mixer.gates(torch.randn(3, 16, dtype=torch.float64))
    torch.testing.assert_close(a, torch.full_like(a, u), rtol=0, atol=1e-6)  # Λ is drawn in float32


def test_a_is_sigmoid_lambda_to_the_power_c_times_r():
    torch.manual_seed(0)
    mixer = HybridInput(8, r_min=0.2, r_max=0.9).double()
    e = torch.randn(5, 8, dtype=torch.float64)
    a, i = mixer.gates(e)
    r = torch.sigmoid(mixer.gate_r(e))
    torch.testing.assert_close(a, torch.sigmoid(mixer.Lambda) ** (GATE_C * r))
    torch.testing.assert_close(i, torch.sigmoid(mixer.gate_i(e)))


def test_lambda_init_spans_the_range():
    u = torch.sigmoid(lambda_init(10_000, 0.99, 0.999, torch.Generator().manual_seed(0)).double()) ** GATE_C
    assert float(u.min()) >= 0.99 - 1e-6 and float(u.max()) <= 0.999 + 1e-6
    assert abs(float(u.mean()) - 0.9945) < 1e-3


def test_the_hidden_share_starts_small():
    mixer = HybridInput(192, generator=torch.Generator().manual_seed(0))
    a, i = mixer.gates(torch.randn(64, 192) * 0.05)
    share = hidden_share(a)
    assert 0.03 < float(share.mean()) < 0.1  # r ≈ 0.5: a = u^0.5, u in [0.99, 0.999]
    assert 0.45 < float(i.mean()) < 0.55


def test_projection_of_a_one_hot_distribution_is_that_tokens_embedding():
    E = torch.randn(11, 6)
    p = torch.zeros(3, 11)
    p[0, 4] = p[1, 0] = p[2, 10] = 1.0
    torch.testing.assert_close(project_distribution(p, E), E[[4, 0, 10]])


def test_projection_divides_by_the_l2_norm():
    E = torch.randn(4, 3, dtype=torch.float64)
    p = torch.tensor([0.5, 0.5, 0.0, 0.0], dtype=torch.float64)
    expected = (0.5 * E[0] + 0.5 * E[1]) / (0.5**0.5)
    torch.testing.assert_close(project_distribution(p, E), expected)


def test_mix_with_a_one_is_the_token_embedding_and_fixed_mode_uses_constant_a():
    e, h = torch.randn(2, 5, dtype=torch.float64), torch.randn(2, 5, dtype=torch.float64)
    plain, _ = HybridInput(5, mode="fixed", fixed_a=1.0).double()(e, h)
    torch.testing.assert_close(plain, e, atol=2e-4 * float(h.abs().max()), rtol=0)  # sqrt(1e-8) leak
    mixed, _ = HybridInput(5, mode="fixed", fixed_a=0.6).double()(e, h)
    torch.testing.assert_close(mixed, 0.6 * e + (1 - 0.36 + 1e-8) ** 0.5 * h)
    assert list(HybridInput(5, mode="fixed").parameters()) == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="r_min"):
        HybridInput(4, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="mode"):
        HybridInput(4, mode="soft")

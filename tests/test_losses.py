"""Loss primitives (unpaired.losses) against values worked out by hand or from first principles."""

from __future__ import annotations

import math

import pytest
import torch
from torch.distributions import Normal, kl_divergence

from unpaired.losses.adversarial import (
    GAN_KINDS,
    discriminator_loss,
    generator_loss,
    gradient_penalty,
    r1_penalty,
)
from unpaired.losses.reconstruction import kl_standard_normal, l1

REAL = torch.tensor([2.0, -1.0])
FAKE = torch.tensor([0.5, -3.0])


def approx(value: float):
    return pytest.approx(value, rel=1e-6, abs=1e-6)


# -------------------- reconstruction and KL


def test_l1_by_hand():
    out = torch.tensor([[1.0, -2.0], [0.5, 0.0]])
    target = torch.tensor([[0.0, 2.0], [0.5, -1.0]])
    assert l1(out, target).item() == approx((1 + 4 + 0 + 1) / 4)
    assert l1(target, target).item() == 0


def test_l1_is_float32_for_bf16_inputs():
    value = l1(torch.ones(3, dtype=torch.bfloat16), torch.zeros(3, dtype=torch.bfloat16))
    assert value.dtype == torch.float32 and value.item() == 1


def test_kl_of_standard_normal_is_zero():
    assert kl_standard_normal(torch.zeros(4, 8)).item() == 0
    assert kl_standard_normal(torch.zeros(4, 8), torch.zeros(4, 8)).item() == 0


def test_kl_unit_variance_is_half_mu_squared():
    mu = torch.tensor([1.0, -2.0, 0.0, 3.0])
    assert kl_standard_normal(mu).item() == approx((1 + 4 + 0 + 9) / 2 / 4)
    reference = kl_divergence(Normal(mu, torch.ones(4)), Normal(0.0, 1.0)).mean()
    assert kl_standard_normal(mu).item() == approx(reference.item())


def test_kl_with_logvar_matches_closed_form():
    torch.manual_seed(0)
    mu, logvar = torch.randn(3, 5), torch.randn(3, 5)
    expected = kl_divergence(Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)).mean()
    assert kl_standard_normal(mu, logvar).item() == pytest.approx(expected.item(), rel=1e-5)
    # one element by hand: mu=1, var=e -> 0.5 * (1 + e - 1 - 1)
    one = kl_standard_normal(torch.tensor([1.0]), torch.tensor([1.0])).item()
    assert one == approx(0.5 * (math.e - 1))


# -------------------- adversarial objectives


def neg_log_sigmoid(t: float) -> float:
    return -math.log(1 / (1 + math.exp(-t)))


def neg_log_one_minus_sigmoid(t: float) -> float:
    return -math.log(1 - 1 / (1 + math.exp(-t)))


def test_nsgan_against_log_sigmoid():
    expected_d = (sum(neg_log_sigmoid(t) for t in REAL.tolist()) / 2
                  + sum(neg_log_one_minus_sigmoid(t) for t in FAKE.tolist()) / 2)
    expected_g = sum(neg_log_sigmoid(t) for t in FAKE.tolist()) / 2
    assert discriminator_loss(REAL, FAKE, "nsgan").item() == approx(expected_d)
    assert generator_loss(FAKE, "nsgan").item() == approx(expected_g)
    # and the same directly in torch, in float64
    r, f = REAL.double(), FAKE.double()
    direct = -torch.log(torch.sigmoid(r)).mean() - torch.log(1 - torch.sigmoid(f)).mean()
    assert discriminator_loss(REAL, FAKE, "nsgan").item() == approx(direct.item())


def test_nsgan_is_stable_for_large_logits():
    big = torch.tensor([100.0, -100.0])
    d = discriminator_loss(big, -big, "nsgan")
    g = generator_loss(big, "nsgan")
    assert torch.isfinite(d) and torch.isfinite(g)
    assert d.item() == approx(100 / 2 * 2)  # one logit of each pair is wrong by 100
    assert g.item() == approx(50.0)


def test_lsgan_by_hand():
    # real: (2-1)^2=1, (-1-1)^2=4 -> 2.5; fake: 0.25, 9 -> 4.625
    assert discriminator_loss(REAL, FAKE, "lsgan").item() == approx(7.125)
    # generator: (0.5-1)^2=0.25, (-3-1)^2=16 -> 8.125
    assert generator_loss(FAKE, "lsgan").item() == approx(8.125)


def test_hinge_by_hand():
    # real: relu(1-2)=0, relu(1+1)=2 -> 1; fake: relu(1.5)=1.5, relu(-2)=0 -> 0.75
    assert discriminator_loss(REAL, FAKE, "hinge").item() == approx(1.75)
    assert generator_loss(FAKE, "hinge").item() == approx(1.25)


@pytest.mark.parametrize("kind", ["wgan", "wgan-gp"])
def test_wgan_by_hand(kind):
    # -mean(real) + mean(fake) = -0.5 + (-1.25)
    assert discriminator_loss(REAL, FAKE, kind).item() == approx(-1.75)
    assert generator_loss(FAKE, kind).item() == approx(1.25)


@pytest.mark.parametrize("kind", GAN_KINDS)
def test_multiscale_sums_over_scales(kind):
    real = [REAL, torch.tensor([[0.3, 1.2], [-0.7, 0.1]])]
    fake = [FAKE, torch.tensor([[1.5, -0.2], [0.4, 2.0]])]
    d_sum = sum(discriminator_loss(r, f, kind) for r, f in zip(real, fake, strict=True))
    g_sum = sum(generator_loss(f, kind) for f in fake)
    assert discriminator_loss(real, fake, kind).item() == approx(d_sum.item())
    assert generator_loss(fake, kind).item() == approx(g_sum.item())
    assert discriminator_loss(tuple(real), tuple(fake), kind).item() == approx(d_sum.item())


def test_lsgan_multiscale_by_hand():
    real = [REAL, torch.tensor([1.0, 1.0, 1.0])]  # second scale: perfect real
    fake = [FAKE, torch.tensor([1.0, -1.0])]  # second scale fake: 1, 1 -> 1
    assert discriminator_loss(real, fake, "lsgan").item() == approx(7.125 + 0 + 1)
    assert generator_loss(fake, "lsgan").item() == approx(8.125 + (0 + 4) / 2)


def test_mismatched_scale_counts_raise():
    with pytest.raises(ValueError):
        discriminator_loss([REAL, REAL], [FAKE], "lsgan")


def test_losses_are_float32_and_differentiable():
    real = REAL.clone().to(torch.bfloat16).requires_grad_(True)
    fake = FAKE.clone().to(torch.bfloat16).requires_grad_(True)
    for kind in GAN_KINDS:
        d = discriminator_loss(real, fake, kind)
        assert d.dtype == torch.float32
        d.backward()
    assert real.grad is not None and fake.grad is not None


def test_unknown_kind_raises_listing_valid():
    with pytest.raises(ValueError, match="unknown GAN objective 'vanilla'; valid: nsgan, lsgan, hinge, wgan, wgan-gp"):
        discriminator_loss(REAL, FAKE, "vanilla")
    with pytest.raises(ValueError, match="unknown GAN objective 'ls'"):
        generator_loss(FAKE, "ls")


# -------------------- penalties


def linear_critic(weight: torch.Tensor):
    """D(x) = <w, x> per sample: its input gradient is w everywhere."""
    return lambda x: (x * weight).flatten(1).sum(1)


def test_gradient_penalty_zero_for_unit_gradient_critic():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    w /= w.norm()
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(0.0, abs=1e-10)


def test_gradient_penalty_positive_otherwise():
    torch.manual_seed(0)
    w = torch.randn(3, 4, 4)
    w *= 2 / w.norm()  # ||grad|| = 2 -> (2 - 1)^2
    real, fake = torch.randn(5, 3, 4, 4), torch.randn(5, 3, 4, 4)
    assert gradient_penalty(linear_critic(w), real, fake).item() == pytest.approx(1.0, rel=1e-5)
    # a nonlinear critic: D(x) = sum x^2, ||grad|| = 2 ||x_hat|| varies -> positive penalty
    penalty = gradient_penalty(lambda x: [(x**2).flatten(1).sum(1)], real, fake)
    assert penalty.item() > 0


def test_gradient_penalty_backpropagates_into_the_critic():
    critic = torch.nn.Conv2d(1, 1, 3, padding=1)
    penalty = gradient_penalty(lambda x: [critic(x)], torch.randn(4, 1, 6, 6), torch.randn(4, 1, 6, 6))
    penalty.backward()
    assert critic.weight.grad is not None and critic.weight.grad.abs().sum() > 0


def test_r1_penalty_by_hand():
    real = torch.tensor([[1.0, 2.0], [0.0, -3.0]]).view(2, 1, 1, 2).requires_grad_(True)
    logits = [(real**2).flatten(1).sum(1)]  # grad = 2x: |2x|^2 = 4 * (1 + 4), 4 * 9
    assert r1_penalty(logits, real).item() == approx((20 + 36) / 2)
    real2 = torch.randn(3, 2, 4, 4).requires_grad_(True)
    w = torch.randn(2, 4, 4)
    # linear critic: ||grad||^2 = ||w||^2 for every sample, summed over two "scales"
    logits2 = [linear_critic(w)(real2), linear_critic(w)(real2)]
    assert r1_penalty(logits2, real2).item() == pytest.approx(((2 * w) ** 2).sum().item(), rel=1e-5)

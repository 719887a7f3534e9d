"""The training step and loop: overfitting, accumulation, non-finite guard, checkpoint resume."""

from __future__ import annotations

import pytest
import torch
from core_helpers import make_tokenizer

from lgvq_core.config import TrainConfig
from lgvq_core.metrics.image import ReconstructionMetrics
from lgvq_core.models.builders import build_discriminator
from lgvq_core.training.checkpoint import load_checkpoint
from lgvq_core.training.loop import build_optimizers, fit


def _psnr(tok, images) -> float:
    tok.eval()
    with torch.no_grad():
        m = ReconstructionMetrics()
        m.update(images, tok(images).reconstruction)
    tok.train()
    return m.compute()["psnr"]


def test_tiny_vqgan_overfits_a_few_images():
    """4 images of coloured rectangles, 60 steps: PSNR rises from < 12 dB past 15 dB (measured: 7.8 → 17.7
    dB)."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(5)
    images = torch.full((4, 3, 16, 16), -0.8)
    for i in range(4):
        y, x = torch.randint(0, 8, (2,), generator=g).tolist()
        images[i, :, y : y + 8, x : x + 8] = torch.rand(3, 1, 1, generator=g) * 1.6 - 0.8
    tok = make_tokenizer("vq")
    disc = build_discriminator(tok.config)
    before = _psnr(tok, images)
    fit(
        tok,
        [{"images": images}],
        TrainConfig(steps=60, lr=3e-3, disc_lr=1e-4, log_every=20),
        discriminator=disc,
    )
    after = _psnr(tok, images)
    assert before < 12.0
    assert after > 15.0, f"PSNR {before:.1f} → {after:.1f} dB"


def test_gradient_accumulation_matches_one_big_batch(images):
    torch.manual_seed(0)
    a = make_tokenizer("vq", commitment_weight=0.25)
    torch.manual_seed(0)
    b = make_tokenizer("vq", commitment_weight=0.25)
    for tok, cfg, batches in [
        (
            a,
            TrainConfig(steps=1, lr=1e-3, grad_accum_steps=2),
            [{"images": images[:1]}, {"images": images[1:]}],
        ),
        (b, TrainConfig(steps=1, lr=1e-3, grad_accum_steps=1), [{"images": images}]),
    ]:
        tok.config = tok.config.__class__.from_dict(
            {**tok.config.to_dict(), "loss": {**tok.config.loss.to_dict(), "disc_weight": 0.0}}
        )
        fit(tok, batches, cfg)
    # the encoder's first conv sees the mean of per-sample gradients either way (per-sample losses are means)
    torch.testing.assert_close(a.encoder.conv_in.weight, b.encoder.conv_in.weight, rtol=1e-4, atol=1e-6)


def test_non_finite_loss_is_skipped_and_counted(images):
    tok = make_tokenizer("vq")
    bad = {"images": torch.full_like(images, float("nan"))}
    good = {"images": images}
    before = tok.decoder.conv_out.weight.detach().clone()
    result = fit(tok, [bad, good, good], TrainConfig(steps=2, lr=1e-3, max_nonfinite_steps=5, log_every=1))
    assert result.state.step == 2 and result.state.skipped_nonfinite == 1
    assert torch.isfinite(tok.decoder.conv_out.weight).all()
    assert not torch.equal(before, tok.decoder.conv_out.weight)
    with pytest.raises(FloatingPointError, match="consecutive non-finite"):
        fit(make_tokenizer("vq"), [bad], TrainConfig(steps=2, lr=1e-3, max_nonfinite_steps=3))


def test_resume_equals_uninterrupted_training(tmp_path, images):
    batches = [{"images": images[:1]}, {"images": images[1:]}]

    def run(steps: int, directory, resume: bool):
        torch.manual_seed(0)
        tok = make_tokenizer("vq-ema", dead_code_threshold=0.05)
        disc = build_discriminator(tok.config)
        cfg = TrainConfig(steps=steps, lr=1e-3, disc_lr=1e-3, checkpoint_dir=str(directory), log_every=1)
        fit(tok, batches, cfg, discriminator=disc, resume=resume)
        return tok, disc

    straight, straight_disc = run(4, tmp_path / "a", resume=False)
    run(2, tmp_path / "b", resume=False)
    resumed, resumed_disc = run(4, tmp_path / "b", resume=True)
    for x, y in [(straight, resumed), (straight_disc, resumed_disc)]:
        sx, sy = x.state_dict(), y.state_dict()
        assert all(torch.equal(sx[k], sy[k]) for k in sx), [k for k in sx if not torch.equal(sx[k], sy[k])]


def test_checkpoint_restores_optimizer_state(tmp_path, images):
    tok = make_tokenizer("vq")
    cfg = TrainConfig(steps=2, lr=1e-3, checkpoint_dir=str(tmp_path))
    result = fit(tok, [{"images": images}], cfg)
    fresh = make_tokenizer("vq")
    opt, _ = build_optimizers(fresh, None, cfg)
    state = load_checkpoint(tmp_path / "last", model=fresh, optimizers={"model": opt})
    assert state.step == 2
    saved = result.optimizer.state_dict()["state"]
    loaded = opt.state_dict()["state"]
    assert saved.keys() == loaded.keys()
    assert all(torch.equal(saved[i]["exp_avg"], loaded[i]["exp_avg"]) for i in saved)


@pytest.mark.parametrize("base", ["vqvae", "vqgan", "cvq", "vqct"])
def test_every_builder_trains_with_the_same_loop(base, word_spec, images):
    from core_helpers import NO_PERCEPTUAL_GAN, TINY_ENCODER

    from lgvq_core.config import QuantizerConfig
    from lgvq_core.models import builders

    kind = {"vqvae": "vq", "vqgan": "vq", "cvq": "cvq", "vqct": "vqct"}[base]
    kwargs = {"encoder": TINY_ENCODER, "quantizer": QuantizerConfig(kind=kind, codebook_size=32, embed_dim=8)}
    if base != "vqvae":
        kwargs["loss"] = NO_PERCEPTUAL_GAN
    if base == "vqct":
        kwargs["spec"] = word_spec
    tok = builders.BUILDERS[base](**kwargs)
    disc = build_discriminator(tok.config)
    assert (disc is None) == (base == "vqvae")
    reports = []
    result = fit(
        tok,
        [{"images": images}],
        TrainConfig(steps=3, lr=1e-3, log_every=1),
        discriminator=disc,
        on_report=lambda step, m: reports.append((step, m)),
    )
    assert result.state.step == 3 and [s for s, _ in reports] == [1, 2, 3]
    assert all(torch.isfinite(torch.tensor(m["total"])) for _, m in reports)
    if disc is not None:
        assert "disc_loss" in reports[-1][1]


def test_epochs_are_announced_to_the_data(images):
    class Batches:
        def __init__(self):
            self.epochs = []

        def set_epoch(self, epoch):
            self.epochs.append(epoch)

        def __iter__(self):
            return iter([{"images": images}, {"images": images}])

    data = Batches()
    result = fit(make_tokenizer("vq"), data, TrainConfig(steps=5, lr=1e-3))
    assert data.epochs == [0, 1, 2] and result.state.epoch == 2 and result.state.batches_seen == 5

"""LanguageGuided on real base tokenizers: loss composition, gradient flow, leak-freedom, overfitting,
checkpoints."""

from __future__ import annotations

import pytest
import torch
from lg_helpers import BASES, captioned_batch, make_base

from lgvq_core.guidance import AlignmentWeights, GuidanceConfig, LanguageGuided
from lgvq_core.outputs import StepLosses


def _config(mode: str, context_length: int = 12, **kwargs) -> GuidanceConfig:
    return GuidanceConfig(mode=mode, context_length=context_length, **kwargs)


def _discriminator(base):
    from lgvq_core.models.builders import build_discriminator

    return build_discriminator(base.config)


@pytest.mark.parametrize("mode", ["paper", "fixed"])
@pytest.mark.parametrize("base_name", BASES)
def test_wrapper_trains_every_base(base_name: str, mode: str, tiny_clip) -> None:
    base = make_base(base_name, embed_words=tiny_clip.embed_words)
    weights = AlignmentWeights(alpha=0.5, beta=0.25, gamma=2.0)
    model = LanguageGuided(base, tiny_clip, _config(mode, weights=weights))
    batch = captioned_batch()
    discriminator = _discriminator(base)
    torch.manual_seed(5)
    step = model.training_losses(batch, step=1, discriminator=discriminator)
    assert isinstance(step, StepLosses)
    for key in ("lgsa", "lmtp", "lras"):
        assert key in step.breakdown and torch.isfinite(step.breakdown[key])
    expected = (
        step.breakdown["base_total"]
        + 0.5 * step.breakdown["lgsa"]
        + 0.25 * step.breakdown["lmtp"]
        + 2.0 * step.breakdown["lras"]
    )
    torch.testing.assert_close(step.total.detach(), expected)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step.total.backward()
    optimizer.step()
    assert model.visual.class_embedding.grad is not None
    if discriminator is not None:  # the base's discriminator step still works through the wrapper
        d_step = model.discriminator_losses(batch, step.output, 1, discriminator)
        assert torch.isfinite(d_step.total)
    assert model.export() is base
    assert not any(k.startswith("text_encoder") for k in model.state_dict())


def test_text_encoder_params_are_not_optimised(tiny_clip) -> None:
    model = LanguageGuided(make_base("vqvae"), tiny_clip, _config("paper"))
    own = {id(p) for p in model.parameters()}
    assert not any(id(p) in own for p in tiny_clip.parameters())


def _lg_only_backward(model: LanguageGuided, batch: dict) -> None:
    model.zero_grad(set_to_none=True)
    output = model.base(batch["images"])
    lg = model.alignment_losses(output.quant.quantized, batch["captions"])
    assert lg.masked.any()
    (lg.lgsa + lg.lmtp + lg.lras).backward()


@pytest.mark.parametrize("mode", ["paper", "fixed"])
def test_gradient_flow_matches_the_official_code(mode: str, tiny_clip) -> None:
    """METHOD-LGVQ §4.5: LG losses reach encoder + quant_conv, never the codebook, decoder or text encoder."""
    torch.manual_seed(0)
    model = LanguageGuided(make_base("vqgan"), tiny_clip, _config(mode))
    batch = captioned_batch()
    _lg_only_backward(model, batch)
    base = model.base

    def nonzero(module: torch.nn.Module) -> bool:
        return any(p.grad is not None and p.grad.abs().sum() > 0 for p in module.parameters())

    assert nonzero(base.encoder) and nonzero(base.quant_conv)
    assert base.quantizer.codebook.grad is None or base.quantizer.codebook.grad.abs().sum() == 0
    assert not nonzero(base.decoder) and not nonzero(base.post_quant_conv)
    assert all(p.grad is None for p in tiny_clip.parameters())
    assert nonzero(model.visual) and nonzero(model.semantic) and nonzero(model.relation)


def test_each_loss_updates_its_own_heads(tiny_clip) -> None:
    """Lgsa → f_vt; Lmtp → f_vt, decoder, head, mask vectors; Lras → projector g only (not f_vt)."""
    torch.manual_seed(0)
    model = LanguageGuided(make_base("vqvae"), tiny_clip, _config("paper"))
    batch = captioned_batch()
    output = model.base(batch["images"])
    lg = model.alignment_losses(output.quant.quantized, batch["captions"])

    def touched(loss: torch.Tensor, module: torch.nn.Module) -> bool:
        params = [p for p in module.parameters() if p.requires_grad]
        grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
        return any(g is not None and g.abs().sum() > 0 for g in grads)

    assert touched(lg.lgsa, model.visual) and not touched(lg.lgsa, model.semantic)
    assert touched(lg.lmtp, model.visual) and touched(lg.lmtp, model.semantic)
    assert touched(lg.lras, model.relation) and not touched(lg.lras, model.visual)
    assert not touched(lg.lgsa, model.relation) and not touched(lg.lmtp, model.relation)


def _decoder_input(model: LanguageGuided, captions: list[str], masked: torch.Tensor) -> torch.Tensor:
    text = model.text_encoder.encode(captions)
    if model.config.mode == "paper":
        states = text.token_states
    else:
        states = model.masked_text_features(text, masked).token_states
    return model.semantic.masked_input(states, masked, text.attention_mask)


@pytest.mark.parametrize("encoder_name", ["tiny_clip", "tiny_bert"])
def test_fixed_mode_masked_word_cannot_leak(encoder_name: str, request) -> None:
    encoder = request.getfixturevalue(encoder_name)
    model = LanguageGuided(make_base("vqvae"), encoder, _config("fixed"))
    a, b = "a small red bird with black wings", "a small blue bird with black wings"
    ids_a, _ = encoder.tokenize([a])
    ids_b, _ = encoder.tokenize([b])
    differing = (ids_a != ids_b).nonzero()
    assert len(differing) == 1, "the captions must differ in exactly one token"
    masked = torch.zeros_like(ids_a, dtype=torch.bool)
    masked[0, differing[0, 1]] = True
    torch.testing.assert_close(
        _decoder_input(model, [a], masked), _decoder_input(model, [b], masked), rtol=0, atol=1e-6
    )


def test_paper_mode_leaks_the_masked_word_through_the_causal_tower(tiny_clip) -> None:
    """The documented leak (METHOD-LGVQ §10.4): later CLIP states still carry the masked token in paper
    mode."""
    model = LanguageGuided(make_base("vqvae"), tiny_clip, _config("paper"))
    a, b = "a small red bird with black wings", "a small blue bird with black wings"
    ids_a, _ = tiny_clip.tokenize([a])
    ids_b, _ = tiny_clip.tokenize([b])
    masked = ids_a != ids_b
    assert int(masked.sum()) == 1
    difference = (_decoder_input(model, [a], masked) - _decoder_input(model, [b], masked)).abs().max()
    assert difference > 1e-3


def _train(model: LanguageGuided, batch: dict, steps: int, lr: float = 3e-3) -> list[dict[str, float]]:
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    history = []
    for step in range(steps):
        losses = model.training_losses(batch, step)
        optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        optimizer.step()
        history.append({k: float(losses.breakdown[k]) for k in ("lgsa", "lmtp", "lras")})
    return history


@pytest.mark.parametrize("mode", ["paper", "fixed"])
def test_all_three_losses_decrease_when_overfitting(mode: str, minilm) -> None:
    """Four captioned images, shipped MiniLM features. Paper mode's τ = 1 InfoNCE has a weak gradient (cosines
    in
    [-1, 1]), hence alpha = 20 so L_gsa visibly moves within 40 steps."""
    torch.manual_seed(0)
    weights = AlignmentWeights(alpha=20.0, beta=1.0, gamma=1.0)
    # paper mode's output masking leaks the masked word through bidirectional MiniLM; allowed explicitly here,
    # where only the optimisation of the three losses is under test
    config = _config(
        mode, context_length=16, weights=weights, decoder_dropout=0.0, allow_leaky_masking=mode == "paper"
    )
    model = LanguageGuided(make_base("vqvae"), minilm, config)
    batch = captioned_batch(textured=True)
    history = _train(model, batch, steps=40)
    for key in ("lgsa", "lmtp", "lras"):
        first = sum(h[key] for h in history[:5]) / 5
        last = sum(h[key] for h in history[-5:]) / 5
        assert last < 0.9 * first, f"{key} did not decrease: {first:.4f} -> {last:.4f}"


def test_shipped_minilm_drives_the_wrapper(minilm) -> None:
    torch.manual_seed(0)
    model = LanguageGuided(make_base("vqvae"), minilm, _config("fixed", context_length=16))
    history = _train(model, captioned_batch(), steps=2)
    assert all(torch.isfinite(torch.tensor(list(h.values()))).all() for h in history)
    assert model.semantic.head.bias.shape == (30522,)


def test_cached_and_uncached_text_give_the_same_losses(tiny_clip) -> None:
    batch = captioned_batch()
    results = []
    for cache_size in (0, 100):
        torch.manual_seed(0)
        model = LanguageGuided(make_base("vqvae"), tiny_clip, _config("paper", text_cache_size=cache_size))
        model.eval()
        torch.manual_seed(1)
        results.append(model.training_losses(batch, 0).total.detach())
    torch.testing.assert_close(results[0], results[1])


def test_save_and_load_round_trip(tmp_path, tiny_clip) -> None:
    torch.manual_seed(0)
    model = LanguageGuided(make_base("vqvae"), tiny_clip, _config("fixed"))
    _train(model, captioned_batch(), steps=1)
    model.save_pretrained(tmp_path / "lg")
    loaded = LanguageGuided.from_pretrained(tmp_path / "lg", tiny_clip)
    assert loaded.config == model.config
    for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items(), strict=False):
        torch.testing.assert_close(a, b, msg=name)


def test_a_checkpoint_without_a_newer_option_loads_with_its_default(tmp_path, tiny_clip) -> None:
    """A folder written before ``masks_per_caption`` existed loads (the option's default is what it trained
    with); an unknown key is still refused."""
    import json

    torch.manual_seed(0)
    LanguageGuided(make_base("vqvae"), tiny_clip, _config("fixed")).save_pretrained(tmp_path / "lg")
    meta_path = tmp_path / "lg" / "guidance.json"
    meta = json.loads(meta_path.read_text())
    del meta["guidance"]["masks_per_caption"]
    meta_path.write_text(json.dumps(meta))
    assert LanguageGuided.from_pretrained(tmp_path / "lg", tiny_clip).config.masks_per_caption == 1
    meta["guidance"]["not_an_option"] = 1
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="not_an_option"):
        LanguageGuided.from_pretrained(tmp_path / "lg", tiny_clip)


def test_bad_inputs_are_rejected(tiny_clip) -> None:
    base = make_base("vqvae")
    with pytest.raises(ValueError, match="context length"):
        LanguageGuided(base, tiny_clip, _config("paper", context_length=30))
    model = LanguageGuided(base, tiny_clip, _config("paper"))
    batch = captioned_batch()
    with pytest.raises(ValueError, match="3 captions for a batch of 4"):
        model.training_losses({**batch, "captions": batch["captions"][:3]}, 0)
    with pytest.raises(KeyError, match="captions"):
        model.training_losses({"images": batch["images"]}, 0)


@pytest.mark.parametrize("mode", ["paper", "fixed"])
def test_the_shared_training_loop_trains_the_wrapper(mode: str, tmp_path, tiny_clip) -> None:
    """lgvq_core.training.loop.fit drives LanguageGuided like a plain tokenizer (incl. GAN and a
    checkpoint)."""
    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import fit

    base = make_base("vqgan")
    model = LanguageGuided(base, tiny_clip, _config(mode))
    config = TrainConfig(steps=2, lr=1e-3, log_every=1, checkpoint_dir=str(tmp_path / "ckpt"))
    result = fit(model, [captioned_batch()], config, discriminator=_discriminator(base))
    assert result.state.step == 2
    assert all(k in result.history[-1] for k in ("lgsa", "lmtp", "lras"))


def test_decoder_trimmed_to_the_real_tokens_gives_the_full_length_loss(tiny_clip) -> None:
    """L_mtp runs the decoder only up to the last real token; a padded full-length run gives the same loss."""
    from lgvq_core.losses.alignment import masked_token_loss

    model = LanguageGuided(make_base("vqvae"), tiny_clip, _config("paper")).eval()
    batch = captioned_batch()
    with torch.no_grad():
        quantized = model.base(batch["images"]).quant.quantized
        text = tiny_clip.encode(batch["captions"])
        assert not text.attention_mask[:, -1].any()  # the captions are shorter than the context
        masked = text.attention_mask & ~text.special_mask
        out = model.alignment_losses(quantized, batch["captions"], masked=masked)
        hidden = model.semantic(text.token_states, masked, text.attention_mask, out.visual)
        logits = model.semantic.head(hidden, tiny_clip.input_embeddings())
        full = masked_token_loss(logits, text.token_ids, masked)
    torch.testing.assert_close(out.lmtp, full, rtol=1e-5, atol=1e-5)


def test_heads_get_their_own_adam_group_and_it_survives_a_resume(tmp_path, tiny_clip) -> None:
    """train.guidance_lr / guidance_betas: every parameter outside .base (and only those) in a second group
    with those settings; a run resumed from its checkpoint keeps both groups."""
    from lgvq_core.config import TrainConfig
    from lgvq_core.training.loop import build_optimizers, fit

    base = make_base("vqgan")
    model = LanguageGuided(base, tiny_clip, _config("fixed"))
    config = TrainConfig(lr=1e-3, guidance_lr=3e-3, guidance_betas=(0.9, 0.999))
    optimizer, _ = build_optimizers(model, None, config)
    tokenizer_group, heads_group = optimizer.param_groups
    assert (tokenizer_group["lr"], tokenizer_group["betas"]) == (1e-3, (0.5, 0.9))
    assert (heads_group["lr"], heads_group["betas"]) == (3e-3, (0.9, 0.999))
    ids = lambda params: {id(p) for p in params}  # noqa: E731
    assert ids(tokenizer_group["params"]) == ids(p for p in base.parameters() if p.requires_grad)
    heads = [p for n, p in model.named_parameters() if not n.startswith("base.") and p.requires_grad]
    assert heads and ids(heads_group["params"]) == ids(heads)
    # unset: one group, as the official single optimizer
    assert len(build_optimizers(model, None, TrainConfig(lr=1e-3))[0].param_groups) == 1

    ckpt = str(tmp_path / "ckpt")
    fit(model, [captioned_batch()], TrainConfig(steps=1, lr=1e-3, guidance_lr=3e-3, checkpoint_dir=ckpt))
    resumed = fit(model, [captioned_batch()], TrainConfig(steps=2, lr=1e-3, guidance_lr=3e-3, checkpoint_dir=ckpt))
    assert resumed.state.step == 2
    assert [g["lr"] for g in resumed.optimizer.param_groups] == [1e-3, 3e-3]

"""``VQTokenizer``: encoder → quant_conv → quantizer → post_quant_conv → decoder, one interface for every
base.

Used the same way for VQ-VAE, VQ-GAN, CVQ and VQCT (only the quantizer and the loss settings differ)::

    tok = builders.vqgan(encoder=EncoderConfig(resolution=32, ch=32, ch_mult=(1, 2), ...))
    indices = tok.encode(images)          # B×h×w int64
    images_hat = tok.decode(indices)      # B×3×H×W
    losses = tok.training_losses({"images": images}, step, discriminator)

The perceptual network is injected (or built lazily from the config on first use); it is frozen and never part
of
the state dict, so checkpoints hold only the tokenizer's own weights.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lgvq_core.config import TokenizerConfig
from lgvq_core.losses.objective import discriminator_objective, generator_objective
from lgvq_core.outputs import QuantizerOutput, StepLosses, TokenizerOutput

__all__ = ["VQTokenizer", "CONFIG_NAME", "WEIGHTS_NAME", "FORMAT_NAME", "check_state_dict"]

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
FORMAT_NAME = "lgvq-tokenizer"
FORMAT_VERSION = 1


def check_state_dict(expected: dict[str, Tensor], found: dict[str, Tensor], *, source: str) -> None:
    """Raise ``ValueError`` listing missing keys, unexpected keys and shape mismatches (``source`` names the
    file)."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    mismatched = sorted(
        f"{k}: expected {tuple(expected[k].shape)}, found {tuple(found[k].shape)}"
        for k in set(expected) & set(found)
        if tuple(expected[k].shape) != tuple(found[k].shape)
    )
    problems = []
    if missing:
        problems.append(
            f"missing keys ({len(missing)}): {', '.join(missing[:10])}{' …' if len(missing) > 10 else ''}"
        )
    if unexpected:
        problems.append(
            f"unexpected keys ({len(unexpected)}): "
            f"{', '.join(unexpected[:10])}{' …' if len(unexpected) > 10 else ''}"
        )
    if mismatched:
        problems.append(f"shape mismatches: {'; '.join(mismatched[:10])}")
    if problems:
        raise ValueError(f"{source}: state dict does not match the model: " + " | ".join(problems))


class VQTokenizer(nn.Module):
    """A VQ image tokenizer (see module docstring).

    Args:
        config: the full configuration (saved with the weights).
        encoder, decoder: taming ``Encoder`` / ``Decoder`` built from ``config.encoder``.
        quantizer: a quantizer module (``VectorQuantizer``, ``ClusteredVectorQuantizer``, ``VQCTQuantizer``)
        with
            ``latent_dim``, ``num_tokens``, ``forward``, ``assign``, ``embed``, ``get_codebook``.
        perceptual: optional injected perceptual loss module ``(images, reconstruction) -> scalar``.
    """

    def __init__(
        self,
        config: TokenizerConfig,
        *,
        encoder: nn.Module,
        decoder: nn.Module,
        quantizer: nn.Module,
        perceptual: nn.Module | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.encoder = encoder
        self.decoder = decoder
        self.quantizer = quantizer
        z_channels = config.encoder.z_channels
        self.quant_conv = nn.Conv2d(z_channels, quantizer.latent_dim, 1)
        self.post_quant_conv = nn.Conv2d(quantizer.latent_dim, z_channels, 1)
        object.__setattr__(self, "_perceptual", perceptual)  # not a submodule: never saved, never optimised

    # ------------------------------------------------------------------------------------------- properties

    @property
    def perceptual(self) -> nn.Module | None:
        """The perceptual loss module; built from ``config.loss`` on first access when not injected."""
        if self._perceptual is None and self.config.loss.uses_perceptual:
            from lgvq_core.losses.perceptual_factory import build_perceptual

            module = build_perceptual(self.config.loss)
            module.to(next(self.parameters()).device)
            object.__setattr__(self, "_perceptual", module)
        return self._perceptual

    def _apply(self, fn, recurse: bool = True):  # keep the non-submodule perceptual net on the same device
        super()._apply(fn, recurse)
        if self._perceptual is not None:
            self._perceptual._apply(fn, recurse)
        return self

    @property
    def grid_size(self) -> tuple[int, int]:
        """(h, w) latent grid at the configured resolution."""
        side = self.config.encoder.resolution
        return self.config.encoder.latent_grid(side, side)

    @property
    def codebook_size(self) -> int:
        """Size of the token vocabulary (``encode`` returns indices in ``[0, codebook_size)``)."""
        return self.quantizer.num_tokens

    @property
    def embed_dim(self) -> int:
        """Channels D of the quantized latent (``quantize``/``embed``/``decode_quantized``)."""
        return self.quantizer.latent_dim

    @property
    def codebook(self) -> Tensor:
        """Current code vectors (K×D; for VQCT the (adjectives + nouns)×d word codes)."""
        return self.quantizer.get_codebook()

    @property
    def last_layer(self) -> Tensor:
        return self.decoder.conv_out.weight

    # ------------------------------------------------------------------------------------------- forward API

    def encode_latent(self, images: Tensor) -> Tensor:
        """images B×C×H×W in [-1, 1] → pre-quantization latent B×D×h×w."""
        return self.quant_conv(self.encoder(images))

    def quantize(self, z: Tensor) -> QuantizerOutput:
        """latent B×D×h×w → QuantizerOutput (updates codebook state in training mode)."""
        return self.quantizer(z)

    def decode_quantized(self, quantized: Tensor) -> Tensor:
        """quantized B×D×h×w → images B×C×H×W."""
        return self.decoder(self.post_quant_conv(quantized))

    def forward(self, images: Tensor) -> TokenizerOutput:
        latent = self.encode_latent(images)
        quant = self.quantize(latent)
        return TokenizerOutput(
            reconstruction=self.decode_quantized(quant.quantized), quant=quant, latent=latent
        )

    @torch.no_grad()
    def encode(self, images: Tensor) -> Tensor:
        """images B×C×H×W → token indices B×h×w int64 (no state is updated)."""
        return self.quantizer.assign(self.encode_latent(images))

    def embed(self, indices: Tensor) -> Tensor:
        """indices B×h×w → code vectors B×D×h×w."""
        return self.quantizer.embed(indices)

    def decode(self, indices: Tensor) -> Tensor:
        """indices B×h×w → images B×C×H×W."""
        return self.decode_quantized(self.embed(indices))

    # ------------------------------------------------------------------------------------------- losses

    def training_losses(
        self, batch: dict[str, Any], step: int, discriminator: nn.Module | None = None
    ) -> StepLosses:
        """Generator objective for a batch (``batch["images"]`` B×3×H×W in [-1, 1])."""
        images = batch["images"]
        output = self(images)
        total, breakdown = generator_objective(
            images,
            output,
            step,
            config=self.config.loss,
            last_layer=self.last_layer,
            perceptual=self.perceptual,
            discriminator=discriminator,
        )
        if output.quant.usage is not None:
            breakdown["perplexity"] = output.quant.perplexity.detach()
        return StepLosses(total=total, breakdown=breakdown, output=output)

    def discriminator_losses(
        self, batch: dict[str, Any], output: TokenizerOutput, step: int, discriminator: nn.Module
    ) -> StepLosses:
        """Discriminator objective on the generator step's output (the forward is not recomputed)."""
        total, breakdown = discriminator_objective(
            batch["images"], output.reconstruction, step, config=self.config.loss, discriminator=discriminator
        )
        return StepLosses(total=total, breakdown=breakdown, output=output)

    # ------------------------------------------------------------------------------------------- persistence

    def extra_config(self) -> dict[str, Any]:
        """Non-tensor data the quantizer needs to be rebuilt (VQCT vocabulary); saved in config.json."""
        getter = getattr(self.quantizer, "extra_config", None)
        return getter() if getter is not None else {}

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` atomically (temp dir + rename)."""
        target = Path(directory)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
        try:
            state = {k: v.detach().contiguous().cpu() for k, v in self.state_dict().items()}
            save_file(state, str(tmp / WEIGHTS_NAME), metadata={"format": FORMAT_NAME})
            meta = {
                "format": FORMAT_NAME,
                "format_version": FORMAT_VERSION,
                "config": self.config.to_dict(),
                "extra": self.extra_config(),
            }
            (tmp / CONFIG_NAME).write_text(json.dumps(meta, indent=2, sort_keys=True))
            _replace_dir(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    @classmethod
    def from_pretrained(
        cls,
        directory: str | os.PathLike[str],
        *,
        perceptual: nn.Module | None = None,
        map_location: str = "cpu",
    ) -> VQTokenizer:
        """Load a tokenizer written by ``save_pretrained``; refuses any key or shape mismatch."""
        directory = Path(directory)
        config_path, weights_path = directory / CONFIG_NAME, directory / WEIGHTS_NAME
        for path in (config_path, weights_path):
            if not path.is_file():
                raise FileNotFoundError(
                    f"{path}: not found (expected a directory written by save_pretrained)"
                )
        try:
            meta = json.loads(config_path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{config_path}: invalid JSON ({err})") from err
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise ValueError(f"{config_path}: not an {FORMAT_NAME} config (field 'format')")
        if meta.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{config_path}: unsupported format_version {meta.get('format_version')!r}")
        for key in ("config", "extra"):
            if key not in meta:
                raise ValueError(f"{config_path}: missing field {key!r}")
        try:
            config = TokenizerConfig.from_dict(meta["config"])
        except ValueError as err:
            raise ValueError(f"{config_path}: {err}") from err
        from lgvq_core.models.builders import build

        model = build(config, perceptual=perceptual, extra=meta["extra"])
        state = load_file(str(weights_path), device=map_location)
        check_state_dict(model.state_dict(), state, source=str(weights_path))
        model.load_state_dict(state, strict=True)
        return model


def _replace_dir(src: Path, dst: Path) -> None:
    """Move ``src`` to ``dst``; an existing ``dst`` is replaced (renamed aside first, then removed)."""
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        if old.exists():
            shutil.rmtree(old)
        os.replace(dst, old)
        os.replace(src, dst)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(src, dst)

"""``LanguageGuided``: LG-VQ's three alignment losses on top of any base tokenizer (VQ-VAE, VQ-GAN, CVQ,
VQCT).

The wrapper calls the base's own ``training_losses`` (reconstruction, quantizer, GAN terms) and adds
``alpha·Lgsa + beta·Lmtp + gamma·Lras`` computed from the straight-through quantized map
``output.quant.quantized`` and the captions of the batch. Because the quantized map is ``z + sg(z_q − z)``,
the LG gradients reach the encoder but never the codebook directly (METHOD-LGVQ §4.5); the frozen text encoder
gets none.

The text encoder is *not* a registered submodule: it is absent from ``parameters()``/``state_dict()`` (the
optimizer and checkpoints hold only the base and the LG heads) but follows ``.to(device)``.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_core.guidance.config import GuidanceConfig
from lgvq_core.guidance.masking import sample_mask_ratio, sample_token_mask
from lgvq_core.guidance.relation_alignment import CodeProjector
from lgvq_core.guidance.semantic_alignment import FactoredMemory, SemanticAlignment
from lgvq_core.guidance.text_cache import TextFeatureCache
from lgvq_core.guidance.text_encoder import TextEncoder, TextFeatures
from lgvq_core.guidance.visual_encoder import VisualTokenEncoder
from lgvq_core.losses.alignment import global_alignment_loss, masked_token_loss, relation_alignment_loss
from lgvq_core.outputs import StepLosses, TokenizerOutput

logger = logging.getLogger(__name__)

HEADS_FILE = "guidance.safetensors"
CONFIG_FILE = "guidance.json"
BASE_DIR = "base"
MAX_LOGIT_SCALE = 100.0


@dataclass
class AlignmentOutput:
    """The three LG losses of one batch plus what the diagnostics need.

    Attributes:
        lgsa, lmtp, lras: scalar losses (unweighted).
        visual: B×(1+N)×E visual-token outputs (index 0 = [CLS]); only [CLS] carries a gradient (the other
            tokens reach the decoder as factors, and L_ras only matches words to them).
        text: the unmasked text features (on the model's device).
        masked: B×L bool, the positions masked for L_mtp.
        logits: M×V prediction logits of the masked positions (row order = ``masked.nonzero()``); M×C over
            ``candidates`` with ``prediction_vocabulary="captions"``.
        candidates: the C token ids the logit columns stand for, or ``None`` (all V).
    """

    lgsa: Tensor
    lmtp: Tensor
    lras: Tensor
    visual: Tensor
    text: TextFeatures
    masked: Tensor
    logits: Tensor
    candidates: Tensor | None = None

    def predicted_token_ids(self) -> Tensor:
        """M token ids: the arg-max prediction at each masked position."""
        best = self.logits.argmax(dim=-1)
        return best if self.candidates is None else self.candidates[best]


class LanguageGuided(nn.Module):
    """LG-VQ around a base tokenizer.

    Args:
        base: a ``VQTokenizer`` (anything with ``training_losses(batch, step, discriminator) -> StepLosses``,
            ``embed_dim`` and ``grid_size``).
        text_encoder: a loaded, frozen :class:`~lgvq_core.guidance.text_encoder.TextEncoder` (shared, not
        copied).
        config: heads and loss settings; ``config.context_length`` must equal the encoder's.
    """

    def __init__(
        self, base: nn.Module, text_encoder: TextEncoder, config: GuidanceConfig | None = None
    ) -> None:
        super().__init__()
        config = GuidanceConfig() if config is None else config
        if text_encoder.context_length != config.context_length:
            raise ValueError(
                f"text encoder context length {text_encoder.context_length} != config.context_length "
                f"{config.context_length}; load the encoder with context_length={config.context_length}"
            )
        _check_masking(config, text_encoder)
        self.base = base
        self.config = config
        object.__setattr__(self, "text_encoder", text_encoder)  # deliberately not a submodule
        self.text_cache = TextFeatureCache(text_encoder, config.text_cache_size)
        code_dim = int(base.embed_dim)
        h, w = _grid_size(base)
        text_dim, sentence_dim = text_encoder.hidden_size, text_encoder.sentence_size
        self.visual = VisualTokenEncoder(
            code_dim,
            h * w,
            text_dim,
            width=config.visual_width,
            layers=config.visual_layers,
            heads=config.visual_heads,
            stem=config.visual_stem,
        )
        self.cls_to_sentence: nn.Module = (
            nn.Identity() if sentence_dim == text_dim else nn.Linear(text_dim, sentence_dim, bias=False)
        )
        self.semantic = SemanticAlignment(
            text_dim,
            text_encoder.vocab_size,
            config.context_length,
            layers=config.decoder_layers,
            heads=config.decoder_heads,
            dropout=config.decoder_dropout,
            norm_first=config.decoder_norm_first,
        )
        self.relation = CodeProjector(code_dim, text_dim)
        self.register_buffer("vocabulary_ids", torch.zeros(0, dtype=torch.long))
        self.register_buffer("vocabulary_lookup", torch.zeros(0, dtype=torch.long), persistent=False)
        if config.learns_temperature:
            self.logit_scale = nn.Parameter(torch.tensor(math.log(1.0 / config.init_temperature)))
        _check_beta_placement(base)

    # ------------------------------------------------------------------ delegation to the base tokenizer

    def forward(self, images: Tensor) -> TokenizerOutput:
        return self.base(images)

    def encode(self, images: Tensor) -> Tensor:
        return self.base.encode(images)

    def decode(self, indices: Tensor) -> Tensor:
        return self.base.decode(indices)

    def discriminator_losses(
        self, batch: dict, output: TokenizerOutput, step: int, discriminator: nn.Module
    ) -> StepLosses:
        """The base's discriminator step (the LG losses do not touch the discriminator)."""
        return self.base.discriminator_losses(batch, output, step, discriminator)

    def export(self) -> nn.Module:
        """The base tokenizer alone (LG heads dropped), e.g. for ``save_pretrained`` and downstream use."""
        return self.base

    def _apply(self, fn: Callable, *args: Any, **kwargs: Any) -> LanguageGuided:  # type: ignore[override]
        super()._apply(fn, *args, **kwargs)
        self.text_encoder._apply(fn, *args, **kwargs)
        return self

    # ------------------------------------------------------------------ prediction vocabulary

    def set_prediction_vocabulary(self, captions: Iterable[str] | Tensor, chunk: int = 1024) -> int:
        """Restrict the masked-token head to the tokens of ``captions`` (or to the given token ids); returns
        how many. Only used with ``config.prediction_vocabulary == "captions"``; saved with the heads."""
        if isinstance(captions, Tensor):
            ids = captions.long().unique()
        else:
            found: set[int] = set()
            texts = list(captions)
            for start in range(0, len(texts), chunk):
                token_ids, attention = self.text_encoder.tokenize(texts[start : start + chunk])
                keep = attention & ~self.text_encoder.special_mask(token_ids)
                found.update(token_ids[keep].tolist())
            ids = torch.tensor(sorted(found), dtype=torch.long)
        if ids.numel() == 0:
            raise ValueError("the prediction vocabulary is empty (no captions or no real tokens)")
        if int(ids.min()) < 0 or int(ids.max()) >= self.text_encoder.vocab_size:
            raise ValueError(
                f"token ids outside the text encoder's vocabulary of {self.text_encoder.vocab_size}"
            )
        device = self.semantic.head.bias.device
        self.vocabulary_ids = ids.to(device)
        self._refresh_lookup()
        logger.info("masked-token head restricted to %d caption tokens", ids.numel())
        return int(ids.numel())

    def _refresh_lookup(self) -> None:
        lookup = torch.full(
            (self.text_encoder.vocab_size,), -1, dtype=torch.long, device=self.vocabulary_ids.device
        )
        lookup[self.vocabulary_ids] = torch.arange(self.vocabulary_ids.numel(), device=lookup.device)
        self.vocabulary_lookup = lookup

    def _candidates(self) -> Tensor | None:
        if self.config.prediction_vocabulary == "full":
            return None
        if self.vocabulary_ids.numel() == 0:
            raise RuntimeError(
                "prediction_vocabulary='captions' needs set_prediction_vocabulary(training captions) first"
            )
        if self.vocabulary_lookup.numel() != self.text_encoder.vocab_size:
            self._refresh_lookup()
        return self.vocabulary_ids

    # ------------------------------------------------------------------ losses

    @property
    def temperature(self) -> float:
        """InfoNCE temperature (1 for the official one-way InfoNCE)."""
        return float(1.0 / self._logit_scale()) if self.config.learns_temperature else 1.0

    def _logit_scale(self) -> Tensor:
        return self.logit_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def text_features(self, captions: list[str]) -> TextFeatures:
        """Unmasked frozen features (cached per caption when ``config.text_cache_size > 0``), on the CPU."""
        return self.text_cache.encode(captions)

    def masked_text_features(self, text: TextFeatures, masked: Tensor) -> TextFeatures:
        """Input masking: encode the caption with the masked tokens replaced (mask token) and hidden from
        attention."""
        ids = text.token_ids
        if self.text_encoder.mask_token_id is not None:
            ids = torch.where(masked, torch.full_like(ids, self.text_encoder.mask_token_id), ids)
        return self.text_encoder.encode_ids(ids, text.attention_mask & ~masked)

    def alignment_losses(
        self, quantized: Tensor, captions: list[str], masked: Tensor | None = None
    ) -> AlignmentOutput:
        """L_gsa, L_mtp, L_ras for the quantized map B×D×h×w (straight-through) and B captions.

        Args:
            masked: B×L bool positions to mask for L_mtp (or k·B×L: k draws, row ``i + j·B`` masking caption
                ``i``); ``None`` = sample ``config.masks_per_caption`` draws (truncated-normal ratio,
                Bernoulli). With k draws, ``AlignmentOutput.text``/``masked`` hold the k·B tiled rows.
        """
        if len(captions) != quantized.shape[0]:
            raise ValueError(f"{len(captions)} captions for a batch of {quantized.shape[0]} images")
        device = quantized.device
        text = self.text_features(list(captions)).to(device)
        # The decoder reads the visual tokens as features @ proj (folded into its key/value weights); the
        # projected tokens themselves are needed only for [CLS] (L_gsa) and L_ras's gradient-free matching.
        features = self.visual.features(quantized)
        memory = FactoredMemory(features, self.visual.proj)
        cls_token = features[:, :1] @ self.visual.proj
        with torch.no_grad():
            tokens = features[:, 1:] @ self.visual.proj
        visual = torch.cat([cls_token, tokens], dim=1)
        cls = self.cls_to_sentence(cls_token[:, 0])
        if self.config.learns_temperature:
            lgsa = global_alignment_loss(cls, text.sentence, logit_scale=self._logit_scale(), symmetric=True)
        else:
            lgsa = global_alignment_loss(cls, text.sentence)

        unmasked = text  # L_ras reads each caption once
        draws = self.config.masks_per_caption if masked is None else masked.shape[0] // len(captions)
        if masked is not None and masked.shape[0] != draws * len(captions):
            raise ValueError(f"masked has {masked.shape[0]} rows for {len(captions)} captions")
        if draws > 1:
            text = text.tile(draws)
            memory = FactoredMemory(features.repeat(draws, 1, 1), memory.proj)
        if masked is None:
            ratio = sample_mask_ratio(
                self.config.mask_ratio_mean,
                self.config.mask_ratio_std,
                self.config.mask_ratio_min,
                self.config.mask_ratio_max,
            )
            masked = sample_token_mask(text.attention_mask, text.special_mask, ratio)
        masked = masked.to(device) & text.attention_mask
        if self.config.masks_encoder_output:
            states = text.token_states  # encode, then mask (the official order; see _check_masking)
        else:
            states = self.masked_text_features(text, masked).token_states.to(device)
        # Padding is invisible to the real positions of the decoder (pad ⊗ pad self-attention mask) and
        # outside the loss, so running it only up to the batch's last real token gives the same L_mtp.
        length = _attended_length(text.attention_mask)
        hidden = self.semantic(
            states[:, :length], masked[:, :length], text.attention_mask[:, :length], memory
        )
        candidates = self._candidates()
        logits = self.semantic.head(
            hidden[masked[:, :length]], self.text_encoder.input_embeddings().to(device), candidates
        )
        targets = text.token_ids[masked]
        if candidates is None:
            columns, scored = targets, torch.ones_like(targets, dtype=torch.bool)
        else:  # targets outside the caption vocabulary are left out of the loss (and are misses in recall)
            columns = self.vocabulary_lookup[targets]
            scored = columns >= 0
            columns = columns.clamp_min(0)
        lmtp = masked_token_loss(logits, columns, scored, label_smoothing=self.config.label_smoothing)
        lras = relation_alignment_loss(
            unmasked.token_states,
            visual[:, 1:],
            self.relation(quantized),
            unmasked.attention_mask,
            reduction=self.config.ras_reduction,
        )
        return AlignmentOutput(lgsa, lmtp, lras, visual, text, masked, logits, candidates)

    def training_losses(self, batch: dict, step: int, discriminator: nn.Module | None = None) -> StepLosses:
        """Base objective + alpha·Lgsa + beta·Lmtp + gamma·Lras; breakdown adds ``lgsa``, ``lmtp``,
        ``lras``."""
        if "captions" not in batch:
            raise KeyError("LanguageGuided needs batch['captions'] (one caption per image)")
        base = self.base.training_losses(batch, step, discriminator)
        lg = self.alignment_losses(base.output.quant.quantized, batch["captions"])
        weights = self.config.weights
        total = base.total + weights.alpha * lg.lgsa + weights.beta * lg.lmtp + weights.gamma * lg.lras
        breakdown = dict(base.breakdown)
        breakdown["base_total"] = base.total.detach()
        breakdown["total"] = total.detach()
        breakdown.update(lgsa=lg.lgsa.detach(), lmtp=lg.lmtp.detach(), lras=lg.lras.detach())
        if self.config.learns_temperature:
            breakdown["lg_temperature"] = (1.0 / self._logit_scale()).detach()
        return StepLosses(total=total, breakdown=breakdown, output=base.output)

    # ------------------------------------------------------------------ checkpoints

    def heads_state_dict(self) -> dict[str, Tensor]:
        """The LG heads only (no base, no text encoder)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("base.")}

    def save_pretrained(self, directory: str | Path) -> None:
        """``directory/base`` (the base's own format), ``guidance.safetensors`` (heads), ``guidance.json``."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.base.save_pretrained(directory / BASE_DIR)
        heads = {k: v.detach().cpu().contiguous() for k, v in self.heads_state_dict().items()}
        _atomic_write(directory / HEADS_FILE, lambda path: save_file(heads, str(path)))
        meta = {"guidance": self.config.to_dict(), "text_encoder": self.text_encoder.describe()}
        _atomic_write(directory / CONFIG_FILE, lambda path: path.write_text(json.dumps(meta, indent=2)))

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        text_encoder: TextEncoder,
        base_loader: Callable[[Path], nn.Module] | None = None,
    ) -> LanguageGuided:
        """Reload a :meth:`save_pretrained` folder with an already loaded text encoder (strict heads)."""
        from safetensors.torch import load_file

        directory = Path(directory)
        meta = json.loads((directory / CONFIG_FILE).read_text())
        # Options added after a checkpoint was written take their defaults (what it was trained with);
        # unknown keys still fail.
        config = GuidanceConfig.from_dict(meta["guidance"], fill_defaults=True)
        saved = meta["text_encoder"]
        for key in ("hidden_size", "vocab_size", "context_length"):
            if saved.get(key) != getattr(text_encoder, key):
                raise ValueError(
                    f"{directory / CONFIG_FILE}: text_encoder.{key} = {saved.get(key)} but the given "
                    f"encoder ({text_encoder.name}) has {getattr(text_encoder, key)}"
                )
        if base_loader is None:
            from lgvq_core.models.tokenizer import VQTokenizer

            base_loader = VQTokenizer.from_pretrained
        model = cls(base_loader(directory / BASE_DIR), text_encoder, config)
        heads = load_file(str(directory / HEADS_FILE))
        if "vocabulary_ids" in heads:
            model.vocabulary_ids = torch.zeros_like(heads["vocabulary_ids"])
        missing, unexpected = model.load_state_dict(heads, strict=False)
        missing = [k for k in missing if not k.startswith("base.")]
        if missing or unexpected:
            raise ValueError(f"{directory / HEADS_FILE}: missing {missing}, unexpected {list(unexpected)}")
        if model.vocabulary_ids.numel():
            model._refresh_lookup()
        return model


def _attended_length(attention_mask: Tensor) -> int:
    """Index of the last attended position over the batch + 1 (at least 1)."""
    attended = attention_mask.any(dim=0).nonzero()
    return int(attended.max()) + 1 if len(attended) else 1


def _grid_size(base: nn.Module) -> tuple[int, int]:
    grid = base.grid_size
    grid = grid() if callable(grid) else grid
    h, w = (int(g) for g in grid)
    return h, w


def _check_masking(config: GuidanceConfig, text_encoder: TextEncoder) -> None:
    """Refuse output masking with a bidirectional encoder (the masked word leaks into every position)."""
    if config.masks_encoder_output and not text_encoder.causal:
        if not config.allow_leaky_masking:
            raise ValueError(
                f"masking='encoder_output' with the bidirectional text encoder {text_encoder.name!r} leaks "
                "every masked word into all positions, so L_mtp and masked-word recall measure a text-only "
                "language model. Use masking='encoder_input' (mode 'fixed'), a causal encoder (CLIP), or set "
                "allow_leaky_masking=True to run it anyway."
            )
        logger.warning(
            "masking='encoder_output' with the bidirectional encoder %s: the masked word leaks into every "
            "position (allow_leaky_masking=True)",
            text_encoder.name,
        )
    if not config.masks_encoder_output and text_encoder.mask_token_id is None:
        logger.info("%s has no mask token: masked tokens are only hidden from attention", text_encoder.name)


def _check_beta_placement(base: nn.Module) -> None:
    """Warn when the base's β placement differs from its own official code (builders.official_legacy)."""
    from lgvq_core.models.builders import official_legacy

    config = getattr(base, "config", None)
    legacy = getattr(getattr(config, "quantizer", None), "legacy", None)
    kind = getattr(config, "base", None)
    if legacy is None or kind is None:
        return
    expected = official_legacy(kind)
    if bool(legacy) != expected:
        logger.warning(
            "%s's official code puts β on the %s term (quantizer.legacy=%s); this base has legacy=%s",
            kind,
            "codebook" if expected else "commitment",
            expected,
            legacy,
        )


def _atomic_write(path: Path, write: Callable[[Path], Any]) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

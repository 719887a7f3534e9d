"""Configuration of the language-guided module (frozen dataclasses, strict ``from_dict``).

Three independent switches, each of which can be ablated on its own:

* ``masking``: ``"encoder_output"`` (official) encodes the caption *unmasked* and swaps the masked positions
  of the encoder *output* for learnable mask vectors; ``"encoder_input"`` masks the tokens *before* the text
  encoder (mask token where the tokenizer has one, and hidden from attention), so the masked word cannot leak.
  With a causal encoder (CLIP's text tower) output masking leaks the masked word only into later positions;
  with a bidirectional one (BERT, MiniLM) every position sees it and the masked-token head learns a text-only
  language model. Output masking with a non-causal encoder is therefore refused unless
  ``allow_leaky_masking`` is set (then a warning is logged).
* ``infonce``: ``"one_way_unit_temperature"`` (official: image→text, τ = 1, where even perfect alignment
  barely lowers L_gsa) or ``"symmetric_learned_temperature"`` (CLIP-style, τ learnable from
  ``init_temperature``).
* ``ras_reduction``: ``"all"`` (official: L_ras averaged over all L×L slots, padding in the denominator) or
  ``"valid"`` (over real word pairs only).

``prediction_vocabulary`` (not part of the bundle): ``"full"`` scores every token of the text encoder's
vocabulary in the masked-token head (official; 30,522 for MiniLM, 49,408 for CLIP), ``"captions"`` only
the tokens that occur in the training captions (set with ``LanguageGuided.set_prediction_vocabulary``);
recall is then measured among those candidates (a target outside them counts as a miss).

``mode`` is the bundle: ``paper`` = (encoder_output, one_way_unit_temperature, all), reproducing the official
functions exactly for a causal encoder; ``fixed`` = (encoder_input, symmetric_learned_temperature, valid).
A switch left ``None`` takes the mode's value; an explicit value overrides it.

The placement of the commitment weight β ("legacy" taming placement vs the VQ-VAE paper's) belongs to the base
quantizer's configuration, not to this one; :class:`~lgvq_core.guidance.language_guided.LanguageGuided` only
checks that the base agrees with the mode and logs a warning when it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from lgvq_core.config import ConfigError, _StrictConfig

Mode = Literal["paper", "fixed"]
MODES: tuple[str, ...] = ("paper", "fixed")
VISUAL_STEMS: tuple[str, ...] = ("none", "conv")  # f_vt's stem (VisualTokenEncoder)
Masking = Literal["encoder_input", "encoder_output"]
InfoNCE = Literal["one_way_unit_temperature", "symmetric_learned_temperature"]
RasReduction = Literal["all", "valid"]
PredictionVocabulary = Literal["full", "captions"]
MODE_SWITCHES: dict[str, dict[str, str]] = {
    "paper": {"masking": "encoder_output", "infonce": "one_way_unit_temperature", "ras_reduction": "all"},
    "fixed": {
        "masking": "encoder_input",
        "infonce": "symmetric_learned_temperature",
        "ras_reduction": "valid",
    },
}
SWITCH_VALUES: dict[str, tuple[str, ...]] = {
    "masking": ("encoder_input", "encoder_output"),
    "infonce": ("one_way_unit_temperature", "symmetric_learned_temperature"),
    "ras_reduction": ("all", "valid"),
}


@dataclass(frozen=True)
class AlignmentWeights(_StrictConfig):
    """Weights of the three language-guided terms: total = base + alpha·Lgsa + beta·Lmtp + gamma·Lras.

    The paper gives no values; the official configs use 0.001 / 0.01 / 0.0001 (TextCaps, CelebA-HQ) and
    0.001 / 0.001 / 0.001 (CUB-200) — see :meth:`for_dataset`.
    """

    alpha: float = 0.001
    beta: float = 0.01
    gamma: float = 0.0001

    def __post_init__(self) -> None:
        for name in ("alpha", "beta", "gamma"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"{name} must be a non-negative number, got {value!r}")

    @classmethod
    def for_dataset(cls, dataset: str) -> AlignmentWeights:
        """Official per-dataset weights (METHOD-LGVQ §4.3); unknown datasets get the TextCaps/CelebA
        values."""
        if dataset.lower() in ("cub", "cub200", "cub-200"):
            return cls(alpha=0.001, beta=0.001, gamma=0.001)
        return cls(alpha=0.001, beta=0.01, gamma=0.0001)


@dataclass(frozen=True)
class GuidanceConfig(_StrictConfig):
    """Architecture and loss settings of the LG heads (defaults = the official code, METHOD-LGVQ §3).

    Attributes:
        mode: ``"paper"`` or ``"fixed"``: the default of the three switches below (module docstring).
        masking, infonce, ras_reduction: the switches; ``None`` = the mode's value (filled in on creation).
        allow_leaky_masking: accept ``masking="encoder_output"`` with a bidirectional text encoder.
        prediction_vocabulary: ``"full"`` or ``"captions"`` (module docstring).
        weights: alpha/beta/gamma.
        context_length: text positions L (the official code hard-wires 30, SOT/EOT included).
        visual_width: width of the visual-token transformer; ``None`` = the base's code dimension.
        visual_layers, visual_heads: depth / heads of the visual-token transformer f_vt.
        visual_stem: ``"none"`` (official) or ``"conv"``: residual 3×3 convolutions over the code grid before
            f_vt's transformer, so that tokens see their neighbours (``VisualTokenEncoder``).
        decoder_layers, decoder_heads, decoder_dropout: the cross-attention decoder f_m (FFN = text width).
        decoder_norm_first: pre-LN decoder layers (the official f_m is post-LN, ``False``); pre-LN trains
            faster from scratch, which matters at short CPU budgets.
        mask_ratio_mean, mask_ratio_std, mask_ratio_min, mask_ratio_max: truncated normal of the per-step mask
        ratio.
        masks_per_caption: independent mask draws per caption and step for L_mtp (official: 1). L_mtp is the
            mean over all masked tokens of the draws — the same objective with k× the masked tokens per step;
            each draw costs one masked text-encoder pass and one decoder pass.
        label_smoothing: ε of the masked-token cross-entropy.
        init_temperature: initial InfoNCE temperature in ``fixed`` mode (learnable; ``paper`` uses 1).
        text_cache_size: captions whose frozen text features are kept in memory (0 disables the cache; about
            20 KB each for MiniLM and short captions).
    """

    mode: Mode = "paper"
    weights: AlignmentWeights = field(default_factory=AlignmentWeights)
    masking: Masking | None = None
    infonce: InfoNCE | None = None
    ras_reduction: RasReduction | None = None
    allow_leaky_masking: bool = False
    prediction_vocabulary: PredictionVocabulary = "full"
    context_length: int = 30
    visual_width: int | None = None
    visual_layers: int = 2
    visual_heads: int = 1
    visual_stem: str = "none"
    decoder_layers: int = 2
    decoder_heads: int = 1
    decoder_dropout: float = 0.1
    decoder_norm_first: bool = False
    mask_ratio_mean: float = 0.5
    mask_ratio_std: float = 0.1
    mask_ratio_min: float = 0.1
    mask_ratio_max: float = 0.3
    masks_per_caption: int = 1
    label_smoothing: float = 0.1
    init_temperature: float = 0.07
    text_cache_size: int = 20_000

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"mode must be one of {MODES}, got {self.mode!r}")
        for name, allowed in SWITCH_VALUES.items():
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, MODE_SWITCHES[self.mode][name])
            elif value not in allowed:
                raise ConfigError(f"{name} must be one of {allowed} (or null for the mode's), got {value!r}")
        if self.prediction_vocabulary not in ("full", "captions"):
            raise ConfigError(
                f"prediction_vocabulary must be 'full' or 'captions', got {self.prediction_vocabulary!r}"
            )
        if not isinstance(self.weights, AlignmentWeights):
            raise ConfigError(f"weights must be AlignmentWeights, got {type(self.weights).__name__}")
        if self.context_length < 3:
            raise ConfigError(
                f"context_length must be >= 3 (start, one word, end), got {self.context_length}"
            )
        for name in ("visual_layers", "visual_heads", "decoder_layers", "decoder_heads"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.visual_width is not None and self.visual_width % self.visual_heads:
            raise ConfigError(
                f"visual_width {self.visual_width} is not divisible by visual_heads {self.visual_heads}"
            )
        if self.visual_stem not in VISUAL_STEMS:
            raise ConfigError(f"visual_stem must be one of {VISUAL_STEMS}, got {self.visual_stem!r}")
        if not 0.0 <= self.decoder_dropout < 1.0:
            raise ConfigError(f"decoder_dropout must be in [0, 1), got {self.decoder_dropout}")
        if not 0.0 <= self.mask_ratio_min < self.mask_ratio_max <= 1.0:
            raise ConfigError(
                "need 0 <= mask_ratio_min < mask_ratio_max <= 1, "
                f"got {self.mask_ratio_min}, {self.mask_ratio_max}"
            )
        if self.masks_per_caption < 1:
            raise ConfigError(f"masks_per_caption must be >= 1, got {self.masks_per_caption}")
        if self.mask_ratio_std <= 0:
            raise ConfigError(f"mask_ratio_std must be > 0, got {self.mask_ratio_std}")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ConfigError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.init_temperature <= 0:
            raise ConfigError(f"init_temperature must be > 0, got {self.init_temperature}")
        if self.text_cache_size < 0:
            raise ConfigError(f"text_cache_size must be >= 0, got {self.text_cache_size}")

    @property
    def masks_encoder_output(self) -> bool:
        """True when the caption is encoded unmasked and masked slots are swapped after the encoder."""
        return self.masking == "encoder_output"

    @property
    def learns_temperature(self) -> bool:
        """True for the symmetric InfoNCE with a learnable temperature."""
        return self.infonce == "symmetric_learned_temperature"

    @classmethod
    def paper(cls, dataset: str = "textcaps", **overrides: Any) -> GuidanceConfig:
        """The official code's settings with its per-dataset weights."""
        return cls(mode="paper", weights=AlignmentWeights.for_dataset(dataset), **overrides)

    @classmethod
    def fixed(cls, dataset: str = "textcaps", **overrides: Any) -> GuidanceConfig:
        """Leak-free masking, symmetric InfoNCE with a learnable temperature, padding-aware L_ras."""
        return cls(mode="fixed", weights=AlignmentWeights.for_dataset(dataset), **overrides)

"""Frozen configuration dataclasses with a strict loader.

Every tunable number of a tokenizer lives here. ``from_dict`` refuses unknown keys and (unless
``fill_defaults=True``) missing keys, naming the full key path (``quantizer.cvq.anchor``), and checks types
and
allowed values; ``to_dict`` returns plain JSON-able data (tuples become lists) that ``from_dict`` reads back
exactly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

__all__ = [
    "ConfigError",
    "EncoderConfig",
    "CVQConfig",
    "VQCTConfig",
    "QuantizerConfig",
    "LossConfig",
    "TokenizerConfig",
    "TrainConfig",
    "from_dict",
    "to_dict",
]

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing, unknown, of the wrong type or out of range; the message names the key
    path."""


def _check(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{path}: {message}")


class _StrictConfig:
    """Mixin: ``from_dict`` / ``to_dict`` for the frozen dataclasses below."""

    @classmethod
    def from_dict(cls: type[T], data: dict[str, Any], *, fill_defaults: bool = False, path: str = "") -> T:
        """Build from plain data. Unknown keys always raise; missing keys raise unless ``fill_defaults``."""
        return from_dict(cls, data, fill_defaults=fill_defaults, path=path)

    def to_dict(self) -> dict[str, Any]:
        """Plain, JSON-able data (tuples as lists) that ``from_dict`` reads back to an equal object."""
        return to_dict(self)


@dataclass(frozen=True)
class EncoderConfig(_StrictConfig):
    """Taming encoder/decoder topology (BASELINES §2.2); the decoder mirrors the encoder.

    ``resolution`` is the training image side in pixels; it places the attention layers (at levels whose
    feature side
    is in ``attn_resolutions``). Any input whose sides are multiples of ``downsample_factor`` is accepted at
    run time.
    """

    resolution: int = 256
    in_channels: int = 3
    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    attn_resolutions: tuple[int, ...] = (16,)
    z_channels: int = 256
    dropout: float = 0.0
    norm_groups: int = 32

    def __post_init__(self) -> None:
        _check(self.in_channels > 0, "encoder.in_channels", "must be positive")
        _check(
            len(self.ch_mult) >= 1 and all(m > 0 for m in self.ch_mult), "encoder.ch_mult", "need ≥1 positive"
        )
        _check(self.num_res_blocks >= 1, "encoder.num_res_blocks", "must be ≥ 1")
        _check(0.0 <= self.dropout < 1.0, "encoder.dropout", "must be in [0, 1)")
        _check(self.norm_groups >= 1, "encoder.norm_groups", "must be ≥ 1")
        for name, channels in [("ch", self.ch), ("z_channels", self.z_channels)] + [
            (f"ch*ch_mult[{i}]", self.ch * m) for i, m in enumerate(self.ch_mult)
        ]:
            _check(
                channels % self.norm_groups == 0,
                f"encoder.{name}",
                f"{channels} channels are not divisible by norm_groups={self.norm_groups}",
            )
        f = self.downsample_factor
        _check(
            self.resolution > 0 and self.resolution % f == 0,
            "encoder.resolution",
            f"{self.resolution} is not a positive multiple of the downsampling factor {f} "
            "(2**(len(ch_mult)-1))",
        )

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent position along each side: ``2 ** (len(ch_mult) - 1)``."""
        return 2 ** (len(self.ch_mult) - 1)

    def latent_grid(self, height: int, width: int) -> tuple[int, int]:
        """(h, w) of the latent grid for an image of ``height``×``width`` pixels; raises if not divisible."""
        f = self.downsample_factor
        if height % f or width % f or height <= 0 or width <= 0:
            raise ValueError(
                f"image size {height}×{width} is not a positive multiple of the downsampling factor {f} "
                f"(ch_mult has {len(self.ch_mult)} levels); resize or crop to a multiple of {f}"
            )
        return height // f, width // f


@dataclass(frozen=True)
class CVQConfig(_StrictConfig):
    """CVQ online clustered re-initialisation (BASELINES §3); defaults are the VQCT/LG-VQ copy (§3.3, last
    row)."""

    distance: Literal["l2", "cos"] = "l2"
    anchor: Literal["closest", "random", "probrandom"] = "probrandom"
    decay: float = 0.99
    contrastive: bool = True
    contrastive_temperature: float = 0.07
    contrastive_weight: float = 1.0
    first_batch_only: bool = False

    def __post_init__(self) -> None:
        _check(0.0 < self.decay < 1.0, "cvq.decay", "must be in (0, 1)")
        _check(self.contrastive_temperature > 0, "cvq.contrastive_temperature", "must be positive")


@dataclass(frozen=True)
class VQCTConfig(_StrictConfig):
    """VQCT codebook transfer (BASELINES §4). The sizes are filled from a ``WordCodebookSpec`` by
    ``builders.vqct``.

    ``topk`` nearest adjective codes are averaged per position in training, in eval mode and in tokens alike
    (as the official forward); a token packs the k adjective ids (nearest first) and the noun id into one
    int64 (``num_tokens = A^k·N``, see ``lgvq_core.quantizers.vqct``), so decoding tokens is exact.
    """

    num_adjectives: int = 0
    num_nouns: int = 0
    word_dim: int = 0
    num_edges: int = 0
    topk: int = 2
    gcn_hidden: int = 256
    gcn_dropout: float = 0.5

    def __post_init__(self) -> None:
        _check(self.topk >= 1, "vqct.topk", "must be ≥ 1")
        _check(0.0 <= self.gcn_dropout < 1.0, "vqct.gcn_dropout", "must be in [0, 1)")
        _check(
            min(self.num_adjectives, self.num_nouns, self.word_dim, self.num_edges) >= 0,
            "vqct",
            "negative size",
        )


@dataclass(frozen=True)
class QuantizerConfig(_StrictConfig):
    """Vector quantizer settings shared by ``vq``, ``cvq`` and ``vqct``.

    Loss placement: the codebook term is ``‖sg[z] − e‖²`` (moves codes), the commitment term
    ``‖z − sg[e]‖²`` (moves the encoder). By default they get ``codebook_weight`` and ``commitment_weight``
    respectively (VQ-VAE, CVQ). With ``legacy=True`` the two weights are swapped exactly as taming's
    ``VectorQuantizer2(legacy=True)`` does, i.e. the "β" (``commitment_weight``) lands on the codebook term
    (BASELINES §2.3; VQ-GAN and VQCT official code). ``builders.default_config(base)`` sets each base's
    official placement (``builders.official_legacy``); this class's own default is False.
    ``codebook_update="ema"`` replaces the codebook term by an EMA update (γ = ``ema_decay``, Laplace ε =
    ``ema_eps``); the commitment term then always gets ``commitment_weight`` and ``legacy`` has no effect.
    """

    kind: Literal["vq", "cvq", "vqct"] = "vq"
    codebook_size: int = 1024
    embed_dim: int = 256
    codebook_update: Literal["grad", "ema"] = "grad"
    codebook_weight: float = 1.0
    commitment_weight: float = 0.25
    legacy: bool = False
    l2_normalize: bool = False
    kmeans_init: bool = False
    kmeans_iters: int = 10
    dead_code_threshold: float = 0.0
    usage_decay: float = 0.99
    ema_decay: float = 0.99
    ema_eps: float = 1e-5
    search_chunk_size: int = 1024
    cvq: CVQConfig = field(default_factory=CVQConfig)
    vqct: VQCTConfig = field(default_factory=VQCTConfig)

    def __post_init__(self) -> None:
        _check(self.codebook_size >= 1, "quantizer.codebook_size", "must be ≥ 1")
        _check(self.embed_dim >= 1, "quantizer.embed_dim", "must be ≥ 1")
        _check(
            self.codebook_weight >= 0 and self.commitment_weight >= 0, "quantizer", "loss weights must be ≥ 0"
        )
        _check(0.0 < self.ema_decay < 1.0, "quantizer.ema_decay", "must be in (0, 1)")
        _check(0.0 < self.usage_decay < 1.0, "quantizer.usage_decay", "must be in (0, 1)")
        _check(self.ema_eps > 0, "quantizer.ema_eps", "must be positive")
        _check(self.kmeans_iters >= 0, "quantizer.kmeans_iters", "must be ≥ 0")
        _check(self.dead_code_threshold >= 0, "quantizer.dead_code_threshold", "must be ≥ 0")
        _check(self.search_chunk_size >= 1, "quantizer.search_chunk_size", "must be ≥ 1")
        if self.kind != "vq":
            _check(
                self.codebook_update == "grad",
                "quantizer.codebook_update",
                f"{self.kind} supports only 'grad'",
            )


@dataclass(frozen=True)
class LossConfig(_StrictConfig):
    """Tokenizer objective (BASELINES §2.4): reconstruction + perceptual + quantizer terms + adaptive-weighted
    GAN.

    ``reconstruction``: per-pixel loss, ``"l1+l2"`` is VQCT's VQ-VAE baseline (both means, weight 1 each).
    ``perceptual_net``: ``"efficientnet-lite0"`` is the offline default ("perceptual-EffLite0", not LPIPS);
    ``"lpips-vgg"`` loads LPIPS-VGG weights from ``perceptual_weights_path``. ``disc_weight = 0`` disables the
    GAN.
    """

    reconstruction: Literal["l1", "l2", "l1+l2"] = "l1"
    reconstruction_weight: float = 1.0
    perceptual_weight: float = 1.0
    perceptual_net: Literal["none", "efficientnet-lite0", "lpips-vgg"] = "efficientnet-lite0"
    perceptual_weights_path: str | None = None
    quantizer_weight: float = 1.0
    disc_weight: float = 0.8
    disc_start: int = 10000
    disc_loss: Literal["hinge", "vanilla"] = "hinge"
    adaptive_weight: bool = True
    adaptive_delta: float = 1e-4
    adaptive_max: float = 1e4
    disc_layers: int = 3
    disc_channels: int = 64

    def __post_init__(self) -> None:
        _check(self.perceptual_weight >= 0, "loss.perceptual_weight", "must be ≥ 0")
        _check(self.disc_weight >= 0, "loss.disc_weight", "must be ≥ 0")
        _check(self.disc_start >= 0, "loss.disc_start", "must be ≥ 0")
        _check(self.disc_layers >= 1 and self.disc_channels >= 1, "loss.disc_layers", "must be ≥ 1")
        if self.perceptual_net == "lpips-vgg" and self.perceptual_weight > 0:
            _check(
                self.perceptual_weights_path is not None,
                "loss.perceptual_weights_path",
                "required for lpips-vgg",
            )

    @property
    def uses_gan(self) -> bool:
        return self.disc_weight > 0

    @property
    def uses_perceptual(self) -> bool:
        return self.perceptual_weight > 0 and self.perceptual_net != "none"


@dataclass(frozen=True)
class TokenizerConfig(_StrictConfig):
    """A whole tokenizer: ``base`` names the recipe (``vqvae``, ``vqgan``, ``cvq``, ``vqct``)."""

    base: Literal["vqvae", "vqgan", "cvq", "vqct"] = "vqgan"
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    quantizer: QuantizerConfig = field(default_factory=QuantizerConfig)
    loss: LossConfig = field(default_factory=LossConfig)

    def __post_init__(self) -> None:
        expected = {"vqvae": "vq", "vqgan": "vq", "cvq": "cvq", "vqct": "vqct"}[self.base]
        _check(
            self.quantizer.kind == expected,
            "quantizer.kind",
            f"base {self.base!r} needs quantizer kind {expected!r}, got {self.quantizer.kind!r}",
        )


@dataclass(frozen=True)
class TrainConfig(_StrictConfig):
    """Training loop settings (``lgvq_core.training.loop.fit``).

    ``lr``/``disc_lr`` are absolute learning rates (taming: 4.5e-6 × global batch). ``amp``: autocast dtype
    (``"bf16"`` works on CPU). ``max_nonfinite_steps``: abort after this many skipped non-finite steps in a
    row.
    ``checkpoint_every = 0`` writes only the final checkpoint (when ``checkpoint_dir`` is set).
    ``guidance_lr`` / ``guidance_betas``: Adam settings of the LG heads (every parameter of a wrapper outside
    ``.base``: visual encoder, decoder, projections, temperature) as their own parameter group; ``None`` = the
    tokenizer's ``lr`` / ``betas`` (the official single optimizer). The heads are transformers trained from
    scratch, for which taming's (0.5, 0.9) is a slow choice.
    """

    steps: int = 1000
    lr: float = 4.5e-6
    disc_lr: float = 4.5e-6
    betas: tuple[float, float] = (0.5, 0.9)
    guidance_lr: float | None = None
    guidance_betas: tuple[float, float] | None = None
    weight_decay: float = 0.0
    grad_accum_steps: int = 1
    amp: Literal["none", "bf16", "fp16"] = "none"
    max_grad_norm: float = 0.0
    max_nonfinite_steps: int = 20
    log_every: int = 10
    checkpoint_every: int = 0
    checkpoint_dir: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        _check(self.steps >= 0, "train.steps", "must be ≥ 0")
        _check(self.lr > 0 and self.disc_lr > 0, "train.lr", "must be positive")
        _check(self.guidance_lr is None or self.guidance_lr > 0, "train.guidance_lr", "must be positive")
        _check(
            self.guidance_betas is None or len(self.guidance_betas) == 2,
            "train.guidance_betas",
            "needs two values",
        )
        _check(self.grad_accum_steps >= 1, "train.grad_accum_steps", "must be ≥ 1")
        _check(self.log_every >= 1, "train.log_every", "must be ≥ 1")
        _check(self.max_nonfinite_steps >= 1, "train.max_nonfinite_steps", "must be ≥ 1")
        _check(len(self.betas) == 2, "train.betas", "needs two values")


# --------------------------------------------------------------------------------------------------- strict
# loader


def _is_dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and dataclasses.is_dataclass(tp)


def _convert(value: Any, tp: Any, path: str, fill_defaults: bool) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if _is_dataclass_type(tp):
        _check(isinstance(value, dict), path, f"expected a mapping, got {type(value).__name__}")
        return from_dict(tp, value, fill_defaults=fill_defaults, path=path)
    if origin is Literal:
        allowed = get_args(tp)
        _check(value in allowed, path, f"{value!r} is not one of {list(allowed)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            _check(type(None) in args, path, "may not be null")
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, path, fill_defaults)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError("; ".join(errors))
    if origin is tuple:
        _check(isinstance(value, (list, tuple)), path, f"expected a list, got {type(value).__name__}")
        args = get_args(tp)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{path}[{i}]", fill_defaults) for i, v in enumerate(value))
        _check(len(value) == len(args), path, f"expected {len(args)} values, got {len(value)}")
        return tuple(
            _convert(v, a, f"{path}[{i}]", fill_defaults)
            for i, (v, a) in enumerate(zip(value, args, strict=True))
        )
    if tp is bool:
        _check(isinstance(value, bool), path, f"expected a boolean, got {value!r}")
        return value
    if tp is int:
        _check(
            isinstance(value, int) and not isinstance(value, bool),
            path,
            f"expected an integer, got {value!r}",
        )
        return value
    if tp is float:
        _check(
            isinstance(value, (int, float)) and not isinstance(value, bool),
            path,
            f"expected a number, got {value!r}",
        )
        return float(value)
    if tp is str:
        _check(isinstance(value, str), path, f"expected a string, got {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported field type {tp!r}")


def from_dict(cls: type[T], data: dict[str, Any], *, fill_defaults: bool = False, path: str = "") -> T:
    """Strictly build the dataclass ``cls`` from ``data`` (see module docstring)."""
    prefix = f"{path}." if path else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(prefix + k for k in unknown)} for {cls.__name__}; "
            f"allowed: {', '.join(sorted(fields))}"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        if name not in data:
            has_default = f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING
            if fill_defaults and has_default:
                continue
            raise ConfigError(f"missing key {prefix + name} for {cls.__name__}")
        kwargs[name] = _convert(data[name], hints[name], prefix + name, fill_defaults)
    try:
        return cls(**kwargs)
    except ConfigError as err:
        raise ConfigError(f"{path + ': ' if path else ''}{err}") from None


def to_dict(obj: Any) -> dict[str, Any]:
    """Plain data of a config dataclass: nested dataclasses as dicts, tuples as lists."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        return value

    return plain(obj)

"""``GeneratorConfig``: sampler, code grid, conditions and transformer sizes of ``CodeGenerator``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from lgvq_core.config import ConfigError, _StrictConfig

__all__ = ["CONDITIONS", "GeneratorConfig", "SamplerName"]

SamplerName = Literal["autoregressive", "maskgit"]
CONDITIONS = ("text", "mask")


@dataclass(frozen=True)
class GeneratorConfig(_StrictConfig):
    """Sizes and switches of ``CodeGenerator``.

    Attributes:
        codebook_size: K, the tokenizer's code ids 0..K−1 (id K is reserved: [MASK] for MaskGIT, the start
            token for the autoregressive sampler).
        grid: (h, w) of the code grid.
        sampler: ``"autoregressive"`` (causal, raster order) or ``"maskgit"`` (bidirectional, parallel
            decoding of masked tokens).
        conditions: any of ``"text"`` (frozen text-encoder token states as prefix tokens) and ``"mask"`` (a
            class map, pooled to the grid and added to the image positions).
        condition_dropout: in training, each condition of each example is independently replaced by its
            learned null embedding with this probability (for classifier-free guidance).
        mask_classes: class ids 0..mask_classes−1 of the mask condition.
        text_feature_dim: D of the text features.
        max_text_tokens: text prefix length; shorter texts are padded (padding is hidden from attention).
        width, layers, heads, mlp_ratio, dropout: the transformer's.
        maskgit_steps: default MaskGIT decoding steps.
        init_from_codebook: the image embeddings are to be filled from the tokenizer's codebook
            (``CodeGenerator.init_image_embeddings``).
        codebook_dim: with ``init_from_codebook``: D of the tokenizer's code vectors, making the image
            table K×D followed by a learned projection D→``width``; ``None`` keeps the table K×``width`` and
            maps the codebook to ``width`` columns when it is copied in.
    """

    codebook_size: int
    grid: tuple[int, int]
    sampler: SamplerName = "maskgit"
    conditions: tuple[str, ...] = ()
    condition_dropout: float = 0.2
    mask_classes: int = 0
    text_feature_dim: int = 0
    max_text_tokens: int = 32
    width: int = 128
    layers: int = 4
    heads: int = 4
    mlp_ratio: float = 4.0
    dropout: float = 0.0
    maskgit_steps: int = 8
    init_from_codebook: bool = False
    codebook_dim: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "grid", tuple(self.grid))  # lists (e.g. from YAML) compare equal afterwards
        object.__setattr__(self, "conditions", tuple(self.conditions))
        unknown = [c for c in self.conditions if c not in CONDITIONS]
        checks = [
            (self.codebook_size >= 2, "codebook_size", f"must be an integer ≥ 2, got {self.codebook_size}"),
            (
                len(self.grid) == 2 and min(self.grid) >= 1,
                "grid",
                f"must be two positive integers (h, w), got {self.grid}",
            ),
            (
                self.sampler in ("autoregressive", "maskgit"),
                "sampler",
                f"must be 'autoregressive' or 'maskgit', got {self.sampler!r}",
            ),
            (not unknown, "conditions", f"must be a subset of {list(CONDITIONS)}, got unknown {unknown}"),
            (
                len(set(self.conditions)) == len(self.conditions),
                "conditions",
                f"must not repeat a condition, got {list(self.conditions)}",
            ),
            (
                0.0 <= self.condition_dropout < 1.0,
                "condition_dropout",
                f"must be in [0, 1), got {self.condition_dropout}",
            ),
            (
                self.mask_classes > 0 if "mask" in self.conditions else self.mask_classes >= 0,
                "mask_classes",
                f"must be > 0 when 'mask' is in conditions (≥ 0 otherwise), got {self.mask_classes}",
            ),
            (
                self.text_feature_dim > 0 if "text" in self.conditions else self.text_feature_dim >= 0,
                "text_feature_dim",
                f"must be > 0 when 'text' is in conditions (≥ 0 otherwise), got {self.text_feature_dim}",
            ),
            (self.max_text_tokens >= 1, "max_text_tokens", f"must be ≥ 1, got {self.max_text_tokens}"),
            (self.width >= 1, "width", f"must be ≥ 1, got {self.width}"),
            (self.layers >= 1, "layers", f"must be ≥ 1, got {self.layers}"),
            (
                self.heads >= 1 and self.width % self.heads == 0,
                "heads",
                f"must be ≥ 1 and divide width {self.width}, got {self.heads}",
            ),
            (self.mlp_ratio > 0, "mlp_ratio", f"must be > 0, got {self.mlp_ratio}"),
            (0.0 <= self.dropout < 1.0, "dropout", f"must be in [0, 1), got {self.dropout}"),
            (self.maskgit_steps >= 1, "maskgit_steps", f"must be ≥ 1, got {self.maskgit_steps}"),
            (
                self.codebook_dim is None or (self.init_from_codebook and self.codebook_dim > 0),
                "codebook_dim",
                f"must be null or, with init_from_codebook true, a positive integer; got {self.codebook_dim}",
            ),
        ]
        for ok, key, message in checks:
            if not ok:
                raise ConfigError(f"generator.{key}: {message}")

    @property
    def num_tokens(self) -> int:
        """N = h·w codes per image."""
        return self.grid[0] * self.grid[1]

    @property
    def special_id(self) -> int:
        """Id K: [MASK] (MaskGIT) or the start token (autoregressive)."""
        return self.codebook_size

    @property
    def prefix_length(self) -> int:
        """Prefix positions before the image codes (the padded text, when conditioned on text)."""
        return self.max_text_tokens if "text" in self.conditions else 0

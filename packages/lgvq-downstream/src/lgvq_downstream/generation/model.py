"""``CodeGenerator``: an image-code generator (autoregressive or MaskGIT) on one ``CodeTransformer``.

Sequence: ``[text prefix (max_text_tokens, padded) | image segment]``, the prefix only with a text condition.

* autoregressive: causal attention over the image segment ``[start, c_0, …, c_{N−2}]`` (prefix-LM attention:
  bidirectional over the text prefix); the start token is the learned image id K; the output at position j
  predicts c_j. Codes are in raster order (row-major over the h×w grid).
* maskgit: bidirectional attention over ``[c_0, …, c_{N−1}]`` where masked codes hold the [MASK] id K; the
  output at position j predicts c_j.

A mask condition is added at image position j as the embedding of cell j's class. For the autoregressive
model, position j is where c_j is *predicted*, so it sees the classes of cells 0..j and the codes
c_0..c_{j−1}: the target cell's class is visible and no later code is. Shapes: B batch, h×w grid, N = h·w,
K codebook size::

    config = GeneratorConfig(codebook_size=256, grid=(16, 16), conditions=("mask",), mask_classes=19)
    model = CodeGenerator(config)
    loss = model.loss(codes, Condition(mask=class_maps))  # codes B×16×16, class_maps B×H×W
    samples = model.sample(8, Condition(mask=class_maps[:1]), guidance_scale=2.0)
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_downstream.generation.condition import Condition
from lgvq_downstream.generation.config import GeneratorConfig
from lgvq_downstream.generation.embedding import ConditionEmbedder, EmbeddedCondition, check_condition
from lgvq_downstream.generation.masking import masked_cross_entropy, random_token_mask, token_mask
from lgvq_downstream.generation.samplers.autoregressive import sample_autoregressive
from lgvq_downstream.generation.samplers.guidance import guided
from lgvq_downstream.generation.samplers.maskgit import sample_maskgit
from lgvq_downstream.transformer import CodeTransformer, CodeTransformerConfig, KVCache
from lgvq_downstream.transformer.model import read_model_folder, write_model_folder

__all__ = ["NLL_MASK_RATIOS", "CodeGenerator"]

logger = logging.getLogger(__name__)

FORMAT_NAME = "lgvq-code-generator"
FORMAT_VERSION = 1
NLL_MASK_RATIOS = tuple(math.cos(math.pi / 2 * (i + 0.5) / 4) for i in range(4))
"""MaskGIT ``nll``: the mask ratios cos(π/2·u) at u = 1/8, 3/8, 5/8, 7/8 (≈ 0.98, 0.83, 0.56, 0.20), the
midpoint rule for the training distribution of ratios."""
NLL_SEED = 0


class CodeGenerator(nn.Module):
    """See the module docstring; all sizes come from ``GeneratorConfig``."""

    def __init__(self, config: GeneratorConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        if c.sampler == "maskgit":
            attention = "bidirectional"
        else:
            attention = "prefix" if "text" in c.conditions else "causal"
        self.transformer = CodeTransformer(
            CodeTransformerConfig(
                image_vocab_size=c.codebook_size + 1,
                text_vocab_size=1,
                width=c.width,
                layers=c.layers,
                heads=c.heads,
                mlp_ratio=c.mlp_ratio,
                dropout=c.dropout,
                max_positions=c.prefix_length + c.num_tokens,
                attention=attention,
                init_from_codebook=c.codebook_dim is not None,  # a K×D table (else K×width)
                codebook_dim=c.codebook_dim,
            )
        )
        self.conditioner = ConditionEmbedder(c)

    @property
    def device(self) -> torch.device:
        return self.transformer.pos_embed.weight.device

    @torch.no_grad()
    def init_image_embeddings(self, codebook: Tensor) -> None:
        """Copy the tokenizer's K×D codebook into the image embeddings of ids 0..K−1.

        With ``config.codebook_dim`` = D the table is K×D (a learned projection follows). Otherwise the
        table is K×width and the codebook is mapped to ``width`` columns first: unchanged when D = width,
        zero-padded when D < width, its coordinates along the top ``width`` principal directions (centred;
        zero-padded when K < width) when D > width.
        """
        k = self.config.codebook_size
        if codebook.ndim != 2 or codebook.shape[0] != k:
            raise ValueError(
                f"codebook must be K×D with K = codebook_size = {k}, got {tuple(codebook.shape)}"
            )
        columns = self.transformer.image_embed.embedding_dim
        d = codebook.shape[1]
        if self.config.codebook_dim is None and d != columns:
            codebook = codebook.float()
            if d > columns:
                centred = codebook - codebook.mean(dim=0, keepdim=True)
                directions = torch.linalg.svd(centred, full_matrices=False).Vh[:columns]  # ≤ width × D
                codebook = centred @ directions.T
            codebook = F.pad(codebook, (0, columns - codebook.shape[1]))
        self.transformer.init_image_embeddings(codebook)

    # ------------------------------------------------------------------------------------------- inputs

    def _check_codes(self, codes: Tensor, name: str = "codes") -> Tensor:
        """codes B×h×w int64 in [0, K) → B×N."""
        h, w = self.config.grid
        if codes.ndim != 3 or tuple(codes.shape[1:]) != (h, w) or codes.shape[0] < 1:
            raise ValueError(f"{name} must be B×{h}×{w} (the code grid), got shape {tuple(codes.shape)}")
        if codes.is_floating_point() or codes.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer code ids, got dtype {codes.dtype}")
        codes = codes.long()
        self._check_ids(codes, name)
        return codes.reshape(codes.shape[0], -1)

    def _check_ids(self, ids: Tensor, name: str) -> None:
        k = self.config.codebook_size
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= k):
            raise ValueError(
                f"{name} ids must be in [0, {k}) (codebook_size={k}), got values in "
                f"[{int(ids.min())}, {int(ids.max())}]"
            )

    def _embed(
        self,
        condition: Condition | None,
        batch: int,
        *,
        drop: dict[str, Tensor] | None = None,
        guidance: bool = False,
    ) -> EmbeddedCondition:
        """Embed ``condition`` for ``batch`` rows; with ``guidance``, for 2·batch rows (the second half
        null)."""
        if condition is not None:
            check_condition(self.config, condition)
            size = condition.batch_size()
            if size not in (1, batch):
                raise ValueError(f"condition has batch size {size}; expected 1 or {batch}")
            if size != batch:
                condition = condition.select(torch.zeros(batch, dtype=torch.long))
            condition = condition.to(self.device)
        if not guidance:
            return self.conditioner(condition, batch, device=self.device, drop=drop)
        assert condition is not None
        doubled = condition.select(torch.arange(batch).repeat(2))
        null = torch.arange(2 * batch, device=self.device) >= batch
        drop = {name: null for name in self.config.conditions}
        return self.conditioner(doubled, 2 * batch, device=self.device, drop=drop)

    def _draw_dropout(self, batch: int, generator: torch.Generator | None) -> dict[str, Tensor]:
        p = self.config.condition_dropout
        return {
            name: torch.rand(batch, generator=generator, device=self.device) < p
            for name in self.config.conditions
        }

    # ------------------------------------------------------------------------------------------- forward

    def image_logits(
        self, tokens: Tensor, condition: EmbeddedCondition, cache: KVCache | None = None
    ) -> Tensor:
        """Image-segment tokens B×t → code logits B×t×K (the reserved id K excluded).

        With a non-empty ``cache``, ``tokens`` are the next t tokens after the cached positions (the prefix
        is already in the cache).
        """
        past = cache.length if cache is not None else 0
        first = past == 0
        start = past - self.config.prefix_length if not first else 0
        extra = condition.image_extra
        if extra is not None:
            extra = extra[:, start : start + tokens.shape[1]]
        out = self.transformer(
            prefix_embeds=condition.prefix if first else None,
            prefix_mask=condition.prefix_mask if first else None,
            image_codes=tokens,
            image_extra=extra,
            cache=cache,
        )
        return self.transformer.image_logits(out.segment("image"))[..., : self.config.codebook_size]

    def _start_tokens(self, batch: int) -> Tensor:
        return torch.full((batch, 1), self.config.special_id, dtype=torch.long, device=self.device)

    # ------------------------------------------------------------------------------------------- training

    def loss(
        self, codes: Tensor, condition: Condition | None = None, *, generator: torch.Generator | None = None
    ) -> Tensor:
        """Training loss of codes B×h×w (scalar).

        Autoregressive: mean next-token cross-entropy over all N positions. MaskGIT: per example a mask
        ratio r = cos(π/2·u), u ~ U(0, 1], ⌈r·N⌉ ≥ 1 random positions replaced by [MASK]; mean
        cross-entropy over the masked positions only. In training mode each condition of each example is
        replaced by its null embedding with probability ``condition_dropout``. ``generator`` draws the masks
        and the dropout.
        """
        flat = self._check_codes(codes).to(self.device)
        batch = flat.shape[0]
        if self.config.sampler == "maskgit":
            masked = random_token_mask(batch, flat.shape[1], device=self.device, generator=generator)
        drop = self._draw_dropout(batch, generator) if self.training else None
        embedded = self._embed(condition, batch, drop=drop)
        if self.config.sampler == "autoregressive":
            inputs = torch.cat([self._start_tokens(batch), flat[:, :-1]], dim=1)
            logits = self.image_logits(inputs, embedded)
            return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), flat.reshape(-1))
        inputs = flat.masked_fill(masked, self.config.special_id)
        return masked_cross_entropy(self.image_logits(inputs, embedded), flat, masked)

    @torch.no_grad()
    def nll(self, codes: Tensor, condition: Condition | None = None) -> Tensor:
        """Per-example mean negative log-likelihood, nats per code (B), in eval mode, conditions as given.

        Autoregressive: the exact −log p(codes)/N. MaskGIT: the mean over the mask ratios ``NLL_MASK_RATIOS``
        of the masked-code NLL (positions drawn by a generator seeded with ``NLL_SEED``, so the value is
        deterministic). A model that learned nothing scores about ln K.
        """
        flat = self._check_codes(codes).to(self.device)
        batch, n = flat.shape
        was_training = self.training
        self.eval()
        try:
            embedded = self._embed(condition, batch)
            if self.config.sampler == "autoregressive":
                inputs = torch.cat([self._start_tokens(batch), flat[:, :-1]], dim=1)
                logits = self.image_logits(inputs, embedded).float()
                return F.cross_entropy(logits.transpose(1, 2), flat, reduction="none").mean(dim=1)
            generator = torch.Generator(device=self.device).manual_seed(NLL_SEED)
            total = torch.zeros(batch, device=self.device)
            for ratio in NLL_MASK_RATIOS:
                masked = token_mask(torch.full((batch,), ratio, device=self.device), n, generator=generator)
                logits = self.image_logits(flat.masked_fill(masked, self.config.special_id), embedded)
                total += masked_cross_entropy(logits, flat, masked, per_example=True)
            return total / len(NLL_MASK_RATIOS)
        finally:
            self.train(was_training)

    # ------------------------------------------------------------------------------------------- sampling

    def sample(
        self,
        n: int,
        condition: Condition | None = None,
        *,
        guidance_scale: float = 1.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """``n`` new code grids, n×h×w int64.

        Args:
            condition: batch 1 (shared) or n; ``None``, or a condition the model has but not given: null.
            guidance_scale: classifier-free guidance s (1 = plain conditional sampling).
            temperature, top_k, top_p: token sampling (temperature 0 = greedy).
            seed: seeds the sampler's ``torch.Generator``.
            steps: MaskGIT decoding steps (default ``config.maskgit_steps``); not used by the autoregressive
                sampler.
            use_cache: autoregressive only: KV cache (True) or re-run the whole sequence per code.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n must be an integer ≥ 1, got {n!r}")
        h, w = self.config.grid
        empty = torch.zeros(n, h, w, dtype=torch.long, device=self.device)
        keep = torch.zeros(h, w, dtype=torch.bool, device=self.device)
        return self.complete(
            empty,
            keep,
            condition,
            guidance_scale=guidance_scale,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
            steps=steps,
            use_cache=use_cache,
        )

    @torch.no_grad()
    def complete(
        self,
        indices: Tensor,
        keep_mask: Tensor,
        condition: Condition | None = None,
        *,
        guidance_scale: float = 1.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        seed: int = 0,
        steps: int | None = None,
        use_cache: bool = True,
    ) -> Tensor:
        """Sample the codes of ``indices`` B×h×w where ``keep_mask`` (h×w or B×h×w bool) is False; the kept
        codes are returned unchanged (B×h×w int64). The other arguments are ``sample``'s.

        The autoregressive sampler needs the kept codes to be a raster-order prefix (the same length in every
        row, e.g. the top rows); MaskGIT takes any keep mask.
        """
        h, w = self.config.grid
        if indices.ndim != 3 or tuple(indices.shape[1:]) != (h, w) or indices.shape[0] < 1:
            raise ValueError(f"indices must be B×{h}×{w} (the code grid), got shape {tuple(indices.shape)}")
        if indices.is_floating_point() or indices.dtype == torch.bool:
            raise ValueError(f"indices must hold integer code ids, got dtype {indices.dtype}")
        batch = indices.shape[0]
        keep = self._check_keep_mask(keep_mask, batch)
        flat = indices.long().reshape(batch, -1).to(self.device)
        self._check_ids(flat[keep], "kept code")
        if guidance_scale != 1.0:
            if not self.config.conditions:
                raise ValueError(
                    f"guidance_scale={guidance_scale} needs a conditional model; this one was built with "
                    "conditions=() (use guidance_scale=1.0)"
                )
            if condition is None:
                raise ValueError(f"guidance_scale={guidance_scale} needs a condition; got condition=None")
        guidance = guidance_scale != 1.0
        embedded = self._embed(condition, batch, guidance=guidance)
        generator = torch.Generator(device=self.device).manual_seed(seed)
        was_training = self.training
        self.eval()
        try:
            if self.config.sampler == "autoregressive":
                prefix = self._raster_prefix(keep)
                prompt = torch.cat([self._start_tokens(batch), flat[:, :prefix]], dim=1)

                def next_logits(tokens: Tensor, cache: KVCache | None) -> Tensor:
                    return self.image_logits(tokens, embedded, cache)[:, -1]

                out = sample_autoregressive(
                    guided(next_logits, guidance_scale) if guidance else next_logits,
                    prompt,
                    self.config.num_tokens,
                    new_cache=self.transformer.new_cache if use_cache else None,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    generator=generator,
                )
            else:

                def token_logits(tokens: Tensor) -> Tensor:
                    return self.image_logits(tokens, embedded)

                out = sample_maskgit(
                    guided(token_logits, guidance_scale) if guidance else token_logits,
                    flat,
                    keep,
                    mask_id=self.config.special_id,
                    steps=self.config.maskgit_steps if steps is None else steps,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    generator=generator,
                )
        finally:
            self.train(was_training)
        return torch.where(keep, flat, out).reshape(batch, h, w)

    def _check_keep_mask(self, keep_mask: Tensor, batch: int) -> Tensor:
        """h×w or B×h×w bool → B×N."""
        h, w = self.config.grid
        shape = tuple(keep_mask.shape)
        if keep_mask.dtype != torch.bool or shape not in ((h, w), (batch, h, w)):
            raise ValueError(
                f"keep_mask must be a bool tensor of shape {h}×{w} or {batch}×{h}×{w}, got {keep_mask.dtype} "
                f"of shape {'×'.join(map(str, shape))}"
            )
        return keep_mask.to(self.device).expand(batch, h, w).reshape(batch, -1)

    @staticmethod
    def _raster_prefix(keep: Tensor) -> int:
        """Length p of the raster-order prefix that ``keep`` B×N marks (the same in every row), else raise."""
        counts = keep.sum(dim=1)
        p = int(counts[0])
        positions = torch.arange(keep.shape[1], device=keep.device)
        if bool((counts != p).any()) or not torch.equal(keep, (positions < p).expand_as(keep)):
            raise ValueError(
                "autoregressive completion needs the kept codes to form a raster-order prefix of the same "
                "length in every row (the first p codes in row-major order, e.g. the top rows); this "
                "keep_mask is not one. Use a model with sampler='maskgit' for arbitrary keep masks"
            )
        return p

    # ------------------------------------------------------------------------------------------- persistence

    def save_pretrained(self, directory: str | os.PathLike[str]) -> Path:
        """Write ``config.json`` + ``model.safetensors`` into ``directory`` atomically (temp dir +
        ``os.replace``)."""
        target = write_model_folder(directory, self, self.config.to_dict(), FORMAT_NAME, FORMAT_VERSION)
        logger.info("saved a %s code generator to %s", self.config.sampler, target)
        return target

    @classmethod
    def from_pretrained(
        cls, directory: str | os.PathLike[str], *, map_location: str = "cpu"
    ) -> CodeGenerator:
        """Load a model written by ``save_pretrained``; any key or shape mismatch raises ``ValueError``."""
        model = read_model_folder(
            directory, GeneratorConfig.from_dict, cls, FORMAT_NAME, FORMAT_VERSION, map_location
        )
        return model.to(map_location)

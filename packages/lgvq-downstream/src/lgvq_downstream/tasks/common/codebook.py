"""The tokenizer codebook that initialises a task model's image embeddings."""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from lgvq_downstream.codes.errors import CodeShardError, TokenizerMismatchError
from lgvq_downstream.codes.manifest import CodeManifest, tokenizer_differences
from lgvq_downstream.codes.tokenizer_folder import load_tokenizer

__all__ = ["load_codebook", "standardize_codebook"]

logger = logging.getLogger(__name__)


def load_codebook(manifest: CodeManifest) -> Tensor:
    """K×D code vectors of the tokenizer folder recorded in ``manifest`` (checked against it).

    Raises:
        CodeShardError: no folder recorded, or a VQCT tokenizer (its tokens pack adjective and noun ids; the
            codebook rows are words, not tokens — build with ``init_from_codebook=False``).
        TokenizerMismatchError: the folder now holds another tokenizer than the one that made the codes.
    """
    info = manifest.tokenizer
    if info.vqct is not None:
        raise CodeShardError(
            f"{manifest.root}: VQCT tokens pack adjective and noun ids, so its codebook rows are not tokens; "
            "set init_from_codebook to false"
        )
    if info.path is None:
        raise CodeShardError(
            f"{manifest.root}: the code manifest records no tokenizer folder; pass the codebook explicitly "
            "or set init_from_codebook to false"
        )
    loaded = load_tokenizer(info.path)
    problems = tokenizer_differences(
        info, loaded.info, ("grid", "codebook_size", "config_sha256", "weights_sha256")
    )
    if problems:
        raise TokenizerMismatchError(
            f"{info.path}: no longer holds the tokenizer of the codes in {manifest.root}: "
            + "; ".join(problems)
        )
    codebook = loaded.model.codebook.detach().float().cpu()
    if codebook.shape[0] != info.codebook_size:
        raise CodeShardError(
            f"{info.path}: codebook has {codebook.shape[0]} rows, the codes use {info.codebook_size} tokens"
        )
    logger.info("codebook %d×%d from %s", *codebook.shape, info.path)
    return codebook


def standardize_codebook(codebook: Tensor) -> Tensor:
    """``codebook`` minus its mean row, divided by the root-mean-square entry of the result (an affine map:
    the geometry between codes is kept; a common offset, which says nothing about which code it is, goes)."""
    centred = codebook.float() - codebook.float().mean(dim=0, keepdim=True)
    rms = centred.pow(2).mean().sqrt()
    if not torch.isfinite(rms) or rms <= 0:
        raise ValueError(f"codebook spread is {float(rms)}; cannot standardise it")
    return centred / rms

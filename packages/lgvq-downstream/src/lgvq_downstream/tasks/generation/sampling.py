"""Drawing and decoding samples for the generation tasks: code grids from the generator in batches, images
from a frozen tokenizer, and the unigram baseline's code grids."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn
from tqdm import tqdm

from lgvq_downstream.generation import Condition
from lgvq_downstream.tasks.generation.config import SamplingConfig
from lgvq_downstream.tasks.generation.model import GenerationModel

__all__ = ["decode_images", "draw", "unigram_codes"]

# batch slice (start, stop) → (the codes given, the keep mask, the condition) of that batch
BatchInputs = Callable[[int, int], tuple[Tensor | None, Tensor | None, Condition | None]]


@torch.no_grad()
def draw(
    model: GenerationModel,
    n: int,
    inputs: BatchInputs,
    sampling: SamplingConfig,
    *,
    guidance: bool,
    desc: str,
    progress: bool = True,
) -> Tensor:
    """``n`` code grids n×h×w (int64, CPU): batches of ``sampling.batch_size``; a batch with given codes is
    completed (``complete``), one without is sampled; each batch gets seed ``sampling.seed + start`` so a
    sample does not depend on the batch size of the others. Guidance (``sampling.guidance_scale``) only for
    conditional batches (``guidance``)."""
    generator = model.generator
    out: list[Tensor] = []
    for start in tqdm(range(0, n, sampling.batch_size), desc=desc, disable=not progress, unit="batch"):
        stop = min(n, start + sampling.batch_size)
        given, keep, condition = inputs(start, stop)
        kwargs = dict(
            guidance_scale=sampling.guidance_scale if guidance and condition is not None else 1.0,
            temperature=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            seed=sampling.seed + start,
            steps=sampling.steps,
        )
        if given is not None and keep is not None:
            codes = generator.complete(given, keep, condition, **kwargs)
        else:
            codes = generator.sample(stop - start, condition, **kwargs)
        out.append(codes.cpu())
    return torch.cat(out)


def unigram_codes(frequencies: Tensor, n: int, grid: tuple[int, int], seed: int) -> Tensor:
    """The trivial baseline: n×h×w codes drawn independently from the training codes' frequencies."""
    generator = torch.Generator().manual_seed(seed)
    flat = torch.multinomial(
        frequencies.float().cpu(), n * grid[0] * grid[1], replacement=True, generator=generator
    )
    return flat.reshape(n, *grid)


@torch.no_grad()
def decode_images(decoder: nn.Module, codes: Tensor, batch_size: int = 128) -> Tensor:
    """Code grids n×h×w → images n×3×H×W uint8 (the tokenizer decodes to [-1, 1])."""
    device = next(decoder.parameters()).device
    decoder.eval()
    out = []
    for start in range(0, codes.shape[0], batch_size):
        images = decoder.decode(codes[start : start + batch_size].to(device)).float().clamp(-1.0, 1.0)
        out.append(((images + 1.0) * 127.5).round().to(torch.uint8).cpu())
    return torch.cat(out)

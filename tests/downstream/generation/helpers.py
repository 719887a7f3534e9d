"""Tiny generators and a synthetic code set with structure, shared by the generation tests."""

from __future__ import annotations

import math

import torch

from lgvq_downstream.generation import CodeGenerator, Condition, GeneratorConfig

K = 16
GRID = (4, 4)
CLASSES = 4
TEXT_DIM = 8


def tiny(
    sampler: str = "maskgit", *, conditions: tuple[str, ...] = (), width: int = 32, **overrides
) -> CodeGenerator:
    """A 2-layer generator; with ``scramble`` (default) its weights are large and random (samples vary)."""
    scramble = overrides.pop("scramble", True)
    kwargs = dict(
        codebook_size=K,
        grid=GRID,
        sampler=sampler,
        conditions=conditions,
        mask_classes=CLASSES if "mask" in conditions else 0,
        text_feature_dim=TEXT_DIM if "text" in conditions else 0,
        max_text_tokens=4,
        width=width,
        layers=2,
        heads=4,
    )
    kwargs.update(overrides)
    model = CodeGenerator(GeneratorConfig(**kwargs))
    if scramble:
        with torch.no_grad():
            for name, param in model.named_parameters():
                if param.ndim >= 2:
                    param.normal_(0.0, 0.3)
                elif "bias" in name:
                    param.normal_(0.0, 0.1)
    return model.eval()


def random_condition(batch: int, conditions: tuple[str, ...], seed: int = 0) -> Condition:
    """Random text features (3 token slots, the last padded in odd rows) and/or an 8×8 class map."""
    g = torch.Generator().manual_seed(seed)
    text = mask = text_mask = None
    if "text" in conditions:
        text = torch.randn(batch, 3, TEXT_DIM, generator=g)
        text_mask = torch.ones(batch, 3, dtype=torch.bool)
        text_mask[1::2, 2] = False
    if "mask" in conditions:
        mask = torch.randint(0, CLASSES, (batch, 2 * GRID[0], 2 * GRID[1]), generator=g)
    return Condition(text_features=text, text_mask=text_mask, mask=mask)


def structured_batch(batch: int, generator: torch.Generator) -> tuple[torch.Tensor, Condition]:
    """Codes that are a function of position and condition: a class per cell (class map 8×8, each cell's 2×2
    block one class) and code_i = (i + 5·class_i) mod K. Without the condition, 4 codes per cell are equally
    likely (NLL ln 4 = ½ ln K); with it the codes are determined (NLL → 0)."""
    h, w = GRID
    cells = torch.randint(0, CLASSES, (batch, h, w), generator=generator)
    position = torch.arange(h * w).view(1, h, w)
    codes = (position + 5 * cells) % K
    class_map = cells.repeat_interleave(2, dim=1).repeat_interleave(2, dim=2)
    return codes, Condition(mask=class_map)


def text_batch(batch: int, generator: torch.Generator, table: torch.Tensor) -> tuple[torch.Tensor, Condition]:
    """One class per image given as text (two feature tokens of ``table[class]``, a padded third slot); code_i
    = (i + 5·class) mod K."""
    h, w = GRID
    cls = torch.randint(0, CLASSES, (batch,), generator=generator)
    codes = (torch.arange(h * w).view(1, h, w) + 5 * cls.view(-1, 1, 1)) % K
    features = torch.cat([table[cls], torch.zeros(batch, 1, TEXT_DIM)], dim=1)  # B×3×D
    text_mask = torch.tensor([True, True, False]).expand(batch, 3)
    return codes, Condition(text_features=features, text_mask=text_mask)


def train(model: CodeGenerator, make_batch, *, steps: int, batch: int = 32, lr: float = 3e-3) -> list[float]:
    """AdamW on fresh batches from ``make_batch(batch, generator)``; returns the losses."""
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    model.train()
    losses = []
    for _ in range(steps):
        codes, condition = make_batch(batch, g)
        loss = model.loss(codes, condition, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return losses


LN_K = math.log(K)

"""LG overhead: training-step time of base + LanguageGuided divided by the base alone, measured in one run.

Config = the offline default of params.yaml (VQ-GAN and VQ-VAE, 32×32 images, f=4 → 8×8 tokens, K=256 codes
of 64 dims, batch 32; VQ-GAN with GAN and perceptual-EffLite0 on) with the shipped MiniLM text encoder
(context 30). One "step" is the generator forward + backward + Adam step and the discriminator step, as in
``lgvq_core.training.loop.fit``.

Variants (interleaved round by round so that machine load affects them alike):
  base                   the base tokenizer alone
  paper, cached          LG paper mode, frozen text features cached per caption (the default)
  paper, no cache        LG paper mode, the caption batch re-encoded every step (what the official code does)
  fixed, cached          LG fixed mode: unmasked features cached; the masked captions are encoded every step
                         (their mask is random, so they cannot be cached)

Run: ``python benchmarks/bench_lg_overhead.py [--bases vqgan,vqvae --rounds 5 --steps 1 --batch 32]``; writes
benchmarks/results/bench_lg_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig  # noqa: E402
from lgvq_core.guidance import GuidanceConfig, LanguageGuided, default_text_encoder  # noqa: E402
from lgvq_core.models import builders  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench_lg_overhead"

WORDS = {
    "colour": ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"],
    "shape": ["circle", "square", "triangle", "star", "diamond", "cross"],
    "size": ["small", "large"],
    "relation": ["to the left of", "to the right of", "above", "below"],
}


def captions(count: int, offset: int) -> list[str]:
    """Distinct synthetic captions (so the cache hit rate after the first epoch is what a real run sees)."""
    out = []
    for i in range(offset, offset + count):
        c, s, z = WORDS["colour"], WORDS["shape"], WORDS["size"]
        out.append(
            f"a {z[i % 2]} {c[i % 8]} {s[(i // 8) % 6]} {WORDS['relation'][(i // 48) % 4]} "
            f"a {z[(i // 2) % 2]} {c[(i // 3) % 8]} {s[(i // 5) % 6]}"
        )
    return out


def build_base(name: str, image_size: int):
    encoder = EncoderConfig(
        resolution=image_size,
        ch=32,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        z_channels=64,
        norm_groups=16,
    )
    quantizer = QuantizerConfig(codebook_size=256, embed_dim=64, legacy=True)
    torch.manual_seed(0)
    if name == "vqvae":
        base = builders.vqvae(encoder=encoder, quantizer=quantizer)
    else:
        base = builders.vqgan(
            encoder=encoder,
            quantizer=quantizer,
            loss=LossConfig(disc_start=0, disc_channels=32, disc_layers=2),
        )
    return base, builders.build_discriminator(base.config)


class Runner:
    """One model + its optimizers; ``step`` runs one full training step."""

    def __init__(self, model: torch.nn.Module, discriminator: torch.nn.Module | None) -> None:
        self.model, self.discriminator = model, discriminator
        self.optimizer = torch.optim.Adam(
            [p for p in model.parameters() if p.requires_grad], lr=2e-4, betas=(0.5, 0.9)
        )
        self.disc_optimizer = (
            torch.optim.Adam(discriminator.parameters(), lr=2e-4, betas=(0.5, 0.9))
            if discriminator is not None
            else None
        )
        self.step_index = 0

    def step(self, batch: dict) -> None:
        losses = self.model.training_losses(batch, self.step_index, self.discriminator)
        self.optimizer.zero_grad(set_to_none=True)
        losses.total.backward()
        self.optimizer.step()
        if self.discriminator is not None:
            d = self.model.discriminator_losses(batch, losses.output, self.step_index, self.discriminator)
            self.disc_optimizer.zero_grad(set_to_none=True)
            d.total.backward()
            self.disc_optimizer.step()
        self.step_index += 1


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--bases", default="vqgan,vqvae", help="comma-separated bases to measure")
    parser.add_argument(
        "--rounds", type=int, default=5, help="interleaved rounds (fastest and median reported)"
    )
    parser.add_argument("--steps", type=int, default=1, help="timed steps per variant per round")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument(
        "--distinct-captions",
        type=int,
        default=256,
        help="size of the caption pool (an epoch); cached variants are warmed on it first",
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--component-repeats", type=int, default=5)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    encoder = default_text_encoder(context_length=30)
    pool = captions(args.distinct_captions, 0)
    g = torch.Generator().manual_seed(0)
    images = torch.rand(args.batch, 3, args.image_size, args.image_size, generator=g) * 2 - 1

    variants: dict[str, Runner] = {}
    bases = [b.strip() for b in args.bases.split(",") if b.strip()]
    for base_name in bases:
        base, disc = build_base(base_name, args.image_size)
        variants[f"{base_name} | base"] = Runner(base, disc)
        for label, mode, cache in (
            ("paper, cached", "paper", 100_000),
            ("paper, no cache", "paper", 0),
            ("fixed, cached", "fixed", 100_000),
        ):
            b, d = build_base(base_name, args.image_size)
            model = LanguageGuided(b, encoder, GuidanceConfig(mode=mode, text_cache_size=cache))
            if cache:
                model.text_features(pool)  # one epoch seen: every caption of the pool is cached
            variants[f"{base_name} | {label}"] = Runner(model, d)

    def batch_at(i: int) -> dict:
        start = (i * args.batch) % len(pool)
        caps = (pool + pool)[start : start + args.batch]
        return {"images": images, "captions": caps}

    for runner in variants.values():  # warm-up (allocator, lazy perceptual net)
        for i in range(1):
            runner.step(batch_at(i))
    times: dict[str, list[float]] = {k: [] for k in variants}
    counter = 0
    for _ in range(args.rounds):
        for label, runner in variants.items():
            start = time.perf_counter()
            for _ in range(args.steps):
                runner.step(batch_at(counter))
                counter += 1
            times[label].append((time.perf_counter() - start) / args.steps)

    # Components, each timed alone (fastest of `--component-repeats`): what one LG step adds to a base step.
    components: dict[str, float] = {}
    lg_model = LanguageGuided(build_base("vqvae", args.image_size)[0], encoder, GuidanceConfig(mode="paper"))
    quantized = lg_model.base(images).quant.quantized.detach().requires_grad_(True)
    batch0 = batch_at(0)

    def best(fn) -> float:
        values = []
        for _ in range(args.component_repeats):
            start = time.perf_counter()
            fn()
            values.append(time.perf_counter() - start)
        return min(values)

    def heads_step() -> None:
        out = lg_model.alignment_losses(quantized, batch0["captions"])
        (out.lgsa + out.lmtp + out.lras).backward()

    def fixed_text() -> None:
        text = lg_model.text_features(batch0["captions"])
        lg_model.masked_text_features(text, text.attention_mask & ~text.special_mask)

    lg_model.text_features(pool)
    components["LG heads fwd+bwd (cached text)"] = best(heads_step)
    components["text encoding of the batch (MiniLM, uncached)"] = best(
        lambda: encoder.encode(batch0["captions"])
    )
    components["fixed mode: masked-caption encoding"] = best(fixed_text)
    for label, runner in variants.items():
        if label.endswith("| base"):
            components[f"{label.split(' | ')[0]} base step"] = best(lambda r=runner: r.step(batch0))

    # Other processes only ever add time, so the fastest round is the least disturbed estimate; the median is
    # reported beside it.
    rows = []
    for label, values in times.items():
        base_name = label.split(" | ")[0]
        base_values = times[f"{base_name} | base"]
        rows.append(
            {
                "base": base_name,
                "variant": label.split(" | ")[1],
                "min_step_s": round(min(values), 4),
                "median_step_s": round(statistics.median(values), 4),
                "ratio_vs_base": round(min(values) / min(base_values), 3),
                "median_ratio_vs_base": round(statistics.median(values) / statistics.median(base_values), 3),
            }
        )
    result = {
        "name": NAME,
        "config": {
            **vars(args),
            "model": "32px ch32 ch_mult(1,2,2) K256 D64 legacy β; vqgan: GAN + perceptual-EffLite0 on; "
            "vqvae: L1+L2 only",
            "text_encoder": "all-MiniLM-L6-v2 (shipped), context 30",
        },
        "machine": {
            "python": platform.python_version(),
            "torch": torch.__version__,
            "cpu_count": os.cpu_count(),
            "load_avg_1m": os.getloadavg()[0],
        },
        "rows": rows,
        "components_s": {k: round(v, 4) for k, v in components.items()},
        "goal": "ratio <= 1.2",
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [
        f"# {NAME}",
        "",
        f"Train-step time (generator + discriminator) at batch {args.batch}, {args.image_size}px, "
        f"{args.threads} threads; fastest (and median) of {args.rounds} interleaved rounds × "
        f"{args.steps} steps; "
        f"1-min load average at the end {os.getloadavg()[0]:.1f}.",
        "",
        "| base | variant | step, fastest round (s) | ratio vs base | step, median (s) | median ratio |",
        "|---|---|---|---|---|---|",
        *[
            f"| {r['base']} | {r['variant']} | {r['min_step_s']:.3f} | {r['ratio_vs_base']:.2f}× | "
            f"{r['median_step_s']:.3f} | {r['median_ratio_vs_base']:.2f}× |"
            for r in rows
        ],
        "",
        "Components (each alone, fastest repeat):",
        "",
        "| component | time (s) |",
        "|---|---|",
        *[f"| {k} | {v:.3f} |" for k, v in components.items()],
        "",
    ]
    (RESULTS / f"{NAME}.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()

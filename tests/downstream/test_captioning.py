"""Captioning on code shards, on real components (synthetic scenes, a tiny frozen tokenizer with a fitted
codebook, the MiniLM WordPiece tokenizer, pycocoevalcap): training against the most-frequent-caption
baseline and the shuffled-codes control, decoding, checkpoint round trip and refusal, bad input, the CLI."""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch

from lgvq_downstream.cli import main
from lgvq_downstream.codes import CodeShardError, CodeShardSet
from lgvq_downstream.codes.tokenizer_folder import load_tokenizer
from lgvq_downstream.tasks.captioning import (
    CaptionConfig,
    Captioner,
    build,
    evaluate,
    train,
    train_step,
)
from lgvq_downstream.tasks.captioning.data import CaptionBatchCollator, CaptionPairs, collect_images
from lgvq_downstream.tasks.common import (
    CheckpointMismatchError,
    SkipReport,
    TaskDataError,
    TrainLoopConfig,
    load_text_tokenizer,
)
from lgvq_downstream.tasks.common.codebook import standardize_codebook
from tests.downstream.task_codes import GRID, encode, fitted_tokenizer, scene_rows, write_shards

torch.set_num_threads(1)

needs_java = pytest.mark.skipif(shutil.which("java") is None, reason="caption metrics need `java` on PATH")
METRICS = ("bleu", "rouge", "cider")  # METEOR's JVM takes 7-20 s to start; it is covered in test_metrics
CONFIG = CaptionConfig(
    width=64,
    layers=2,
    heads=4,
    dropout=0.0,
    max_caption_tokens=32,
    mapper="mlp",
    mlp_pool=4,  # = the grid: every code position feeds the MLP
    prefix_length=4,
    metrics=METRICS,
    num_examples=4,
    train=TrainLoopConfig(steps=120, batch_size=32, lr=5e-3, warmup_steps=5, log_every=60),
)


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """24 scenes (18 train, 6 val) encoded by a fitted tiny tokenizer."""
    root = tmp_path_factory.mktemp("caption")
    shards = write_shards(scene_rows(24), root / "shards")
    tokenizer = fitted_tokenizer(shards, root / "tok")
    return {"shards": shards, "tokenizer": tokenizer, "codes": encode(tokenizer, shards, root / "codes")}


@pytest.fixture(scope="module")
def wordpiece() -> Any:
    return load_text_tokenizer("minilm")


@pytest.fixture(scope="module")
def trained(data: dict[str, Path], wordpiece: Any) -> tuple[Captioner, dict[str, Any]]:
    codes = CodeShardSet(data["codes"], split="train")
    model = build(CONFIG, codes, wordpiece)
    return model, train(model, codes, progress=False)


@needs_java
def test_captioner_beats_the_baseline_and_needs_the_image(
    data: dict[str, Path], trained: tuple[Captioner, dict[str, Any]]
) -> None:
    """On the *training* split (18 images, 120 steps): at this scale the captioner memorises its images'
    captions, so this shows that training works and that the captions are read from the codes (shuffling
    the codes between images destroys them) — not that it generalises to new images."""
    model, history = trained
    losses = history["loss"]
    assert history["steps"] == 120 and history["images"] == 18 and history["skipped"]["skipped"] == 0
    assert sum(losses[-10:]) / 10 < 0.5 * sum(losses[:10]) / 10

    report = evaluate(model, CodeShardSet(data["codes"], split="train"))  # beam 3 (the config default)
    ours, base, shuffled = (
        report[k] if k == "metrics" else report[k]["metrics"]
        for k in ("metrics", "baseline", "shuffled_codes")
    )
    assert report["decoding"]["beam_size"] == 3 and report["num_images"] == 18
    for key in ("CIDEr-D", "BLEU-4", "ROUGE-L"):
        assert ours[key] > base[key] and ours[key] > shuffled[key], key
    assert ours["CIDEr-D"] > 2 * max(base["CIDEr-D"], shuffled["CIDEr-D"])
    assert report["image_dependence"]["CIDEr-D"] == pytest.approx(ours["CIDEr-D"] - shuffled["CIDEr-D"])
    # the baseline gives one caption to every image; the model does not
    assert base["distinct_caption_ratio"] == pytest.approx(1 / 18)
    assert ours["distinct_caption_ratio"] > 0.5
    assert report["baseline"]["caption"] == model.baseline_caption
    example = report["examples"][0]
    assert len(report["examples"]) == 4 and len(example["indices"]) == GRID[0]
    assert example["references"] and example["shuffled_from"] != example["id"]


def test_greedy_decoding_is_the_argmax_of_the_full_forward(
    data: dict[str, Path], trained: tuple[Captioner, dict[str, Any]]
) -> None:
    """Greedy captions (KV cache, prefix-LM) equal an argmax loop that re-runs the whole sequence at each
    step; different images get different captions."""
    model, _ = trained
    codes = CodeShardSet(data["codes"], split="train")
    batch = torch.stack([codes[i]["indices"] for i in range(4)])
    greedy = model.generate_ids(batch, beam_size=1)
    banned = [model.vocab.pad_id, model.vocab.bos_id, model.vocab.unk_id]
    tokens = torch.full((4, 1), model.vocab.bos_id)
    with torch.no_grad():
        prefix = model.prefix(batch)
        for _ in range(greedy.shape[1]):
            out = model.transformer(prefix_embeds=prefix, text_tokens=tokens)
            logits = model.transformer.text_logits(out.hidden[:, -1])
            logits[:, banned] = float("-inf")
            tokens = torch.cat([tokens, logits.argmax(-1, keepdim=True)], dim=1)
    eos = model.vocab.eos_id
    for row, manual in zip(greedy.tolist(), tokens[:, 1:].tolist(), strict=True):
        assert eos in row
        end = row.index(eos) + 1
        assert row[:end] == manual[:end]
        assert all(t == model.vocab.pad_id for t in row[end:])
    texts = model.caption(batch, beam_size=1)
    assert texts == [model.vocab.decode(row) for row in greedy.tolist()]
    assert len(set(texts)) > 1 and all(texts)


def test_build_initialises_image_embeddings_from_the_recorded_tokenizer(
    data: dict[str, Path], wordpiece: Any
) -> None:
    codes = CodeShardSet(data["codes"], split="train")
    model = build(CONFIG, codes, wordpiece)
    codebook = load_tokenizer(data["tokenizer"]).model.codebook
    assert model.codebook_dim == codebook.shape[1] == 32
    torch.testing.assert_close(model.transformer.image_embed.weight, standardize_codebook(codebook))
    plain = build(replace(CONFIG, init_from_codebook=False), codes, wordpiece)
    assert plain.codebook_dim is None and plain.transformer.image_embed.weight.shape == (64, CONFIG.width)
    # the vocabulary holds exactly the training captions' WordPiece ids (+ PAD/BOS/EOS/UNK)
    captions = [c for i in range(len(codes)) for c in codes[i]["captions"]]
    pieces = {p for c in captions for p in wordpiece(c, add_special_tokens=False)["input_ids"]}
    assert model.vocab.size == 4 + len(pieces)
    assert model.baseline_caption == Counter(captions).most_common(1)[0][0]
    for caption in captions:
        assert words(model.vocab.decode(model.vocab.encode(caption))) == words(caption.lower())


@pytest.mark.parametrize("mapper", ["transformer", "mlp"])
def test_save_load_round_trip_gives_identical_captions(
    data: dict[str, Path], wordpiece: Any, tmp_path: Path, mapper: str
) -> None:
    codes = CodeShardSet(data["codes"], split="train")
    config = replace(CONFIG, mapper=mapper, train=TrainLoopConfig(steps=3, batch_size=8, warmup_steps=0))
    model = build(config, codes, wordpiece)
    train(model, codes, progress=False)
    folder = model.save_pretrained(tmp_path / "ckpt")
    loaded = Captioner.from_pretrained(folder, text_tokenizer=wordpiece)
    record = json.loads((folder / "task.json").read_text())
    assert record["task"] == "captioning" and record["config"]["mapper"] == mapper
    assert record["tokenizer"]["config_sha256"] == codes.tokenizer.config_sha256
    assert loaded.source == folder and loaded.baseline_caption == model.baseline_caption
    batch = torch.stack([codes[i]["indices"] for i in range(5)])
    assert torch.equal(loaded.generate_ids(batch), model.generate_ids(batch))  # beam search
    pairs = CaptionPairs(collect_images(codes, SkipReport()), model.vocab, 32, SkipReport())
    items = CaptionBatchCollator(model.vocab.pad_id)([pairs[i] for i in range(8)])
    with torch.no_grad():
        assert float(train_step(loaded, items)) == float(train_step(model, items))
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_checkpoint_refuses_codes_of_another_tokenizer(
    data: dict[str, Path], trained: tuple[Captioner, dict[str, Any]], tmp_path: Path
) -> None:
    other_tok = fitted_tokenizer(data["shards"], tmp_path / "tok32", codebook_size=32)
    other = CodeShardSet(encode(other_tok, data["shards"], tmp_path / "codes32"), split="val")
    model, _ = trained
    folder = model.save_pretrained(tmp_path / "ckpt")
    loaded = Captioner.from_pretrained(folder)  # the text tokenizer reloaded from the config ("minilm")
    with pytest.raises(CheckpointMismatchError) as err:
        evaluate(loaded, other)
    message = str(err.value)
    assert str(folder) in message and str(other.root) in message
    for info in (model.tokenizer_info, other.tokenizer):
        assert info.config_sha256[:12] in message
    assert "codebook_size: checkpoint 64, code shards 32" in message
    with pytest.raises(CheckpointMismatchError):
        train(loaded, CodeShardSet(other.root, split="train"), progress=False)


def test_bad_captions_name_shard_row_and_field_or_are_skipped_and_counted(
    data: dict[str, Path], wordpiece: Any, tmp_path: Path
) -> None:
    codes = CodeShardSet(data["codes"], split="train")
    without = CodeShardSet(data["codes"], split="train", columns=["id", "split", "qa"])
    with pytest.raises(CodeShardError, match="no column 'captions'"):
        build(CONFIG, without, wordpiece)

    rows = scene_rows(6)
    long_caption = "a very long " * 20 + "caption"
    rows[4] = {**rows[4], "split": "train", "captions": [rows[4]["captions"][0], long_caption]}
    shards = write_shards(rows, tmp_path / "shards")
    bad = CodeShardSet(encode(data["tokenizer"], shards, tmp_path / "codes"), split="train")
    model = build(CONFIG, codes, wordpiece)
    with pytest.raises(TaskDataError) as err:
        train(model, bad, progress=False)
    assert err.value.field == "captions[1]" and err.value.row == 4 and err.value.row_id == rows[4]["id"]
    assert str(err.value).startswith(f"{tmp_path / 'codes' / 'shard-00000.arrow'}, row 4")
    assert "max_caption_tokens" in str(err.value)

    skipping = replace(CONFIG, train=TrainLoopConfig(steps=2, batch_size=4, on_error="skip"))
    history = train(model, bad, skipping, progress=False)
    assert history["skipped"]["skipped"] == 1 and history["skipped"]["by_field"] == {"captions": 1}
    assert history["examples"] == sum(len(r["captions"]) for r in rows if r["split"] == "train") - 1


@needs_java
def test_cli_trains_and_evaluates_end_to_end(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    config = tmp_path / "caption.json"
    config.write_text(json.dumps({"width": 32, "layers": 1, "heads": 2, "prefix_length": 2, "mapper": "mlp"}))
    args = ["caption", "train", "--codes", str(data["codes"]), "--out", str(out), "--config", str(config)]
    flags = ["--set", "train.warmup_steps=0", "--steps", "4", "--batch-size", "8", "--no-progress"]
    assert main([*args, *flags]) == 0
    history = json.loads((out / "train-history.json").read_text())
    assert history["steps"] == 4 and history["config"]["width"] == 32
    assert history["config"]["train"]["batch_size"] == 8 and history["config"]["train"]["warmup_steps"] == 0
    assert (out / "task.json").is_file() and (out / "transformer" / "model.safetensors").is_file()

    evaluate_args = ["caption", "evaluate", "--codes", str(data["codes"]), "--out", str(out)]
    flags = ["--split", "val", "--greedy", "--metrics", "bleu,cider", "--figure", "--no-progress"]
    assert main([*evaluate_args, *flags]) == 0
    report = json.loads((out / "eval-val.json").read_text())
    assert report["num_images"] == 6 and report["decoding"]["method"] == "greedy"
    assert set(report["metrics"]) >= {"BLEU-4", "CIDEr-D", "distinct_caption_ratio", "protocol"}
    assert "METEOR" not in report["metrics"] and "CIDEr-D" in report["shuffled_codes"]["metrics"]
    assert (out / "eval-val-examples.png").stat().st_size > 1000
    capsys.readouterr()

    assert main(["caption", "evaluate", "--codes", str(data["codes"]), "--out", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lgvq-downstream caption: error:") and "task.json" in err
    assert len(err.splitlines()) == 1

"""The generation tasks of lgvq_downstream (``tasks.generation``) on tiny real inputs: synthetic scenes in
lgvq-data shards, a fitted tiny tokenizer (4×4 codes of 64) and its code shards. One generator with the text
and mask conditions serves the four tasks; the evaluation compares its samples with the reconstructions and
the unigram baseline, and completion keeps the given codes."""

from __future__ import annotations

import dataclasses
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc
import pytest
import torch
from PIL import Image

from lgvq_downstream.cli import main as cli_main
from lgvq_downstream.codes import CodeShardSet
from lgvq_downstream.codes.tokenizer_folder import load_tokenizer
from lgvq_downstream.tasks.common import TrainLoopConfig
from lgvq_downstream.tasks.common.errors import TaskDataError
from lgvq_downstream.tasks.generation import (
    GenerationConfig,
    GenerationModel,
    SamplingConfig,
    build,
    evaluate,
    reference_images,
    train,
)
from tests.downstream.task_codes import encode, fitted_tokenizer, scene_rows, write_shards

SAMPLING = SamplingConfig(num_samples=12, guidance_scale=2.0, batch_size=6, seed=0)
CONFIG = GenerationConfig(
    conditions=("text", "mask"),
    condition_dropout=0.3,
    width=64,
    layers=2,
    heads=4,
    maskgit_steps=4,
    sampling=SAMPLING,
    num_examples=3,
    train=TrainLoopConfig(steps=150, batch_size=16, lr=3e-3, warmup_steps=10, log_every=75),
)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """32 scenes (24 train, 8 val) encoded by a fitted tiny tokenizer."""
    root = tmp_path_factory.mktemp("generation")
    shards = write_shards(scene_rows(32), root / "shards")
    tokenizer = fitted_tokenizer(shards, root / "tok")
    return {
        "root": root,
        "shards": shards,
        "tokenizer": tokenizer,
        "codes": encode(tokenizer, shards, root / "codes"),
    }


@pytest.fixture(scope="module")
def trained(data: dict[str, Path]) -> tuple[GenerationModel, dict[str, Any]]:
    torch.set_num_threads(1)
    codes = CodeShardSet(data["codes"], split="train")
    model = build(CONFIG, codes)
    return model, train(model, codes, progress=False)


def _real(codes: CodeShardSet) -> torch.Tensor:
    return reference_images(codes, [str(codes[i]["id"]) for i in range(len(codes))])


def test_generator_learns_the_codes_and_uses_its_conditions(
    trained: tuple[GenerationModel, dict[str, Any]], data: dict[str, Path]
) -> None:
    model, history = trained
    losses = history["loss"]
    assert history["steps"] == 150 and history["skipped"]["skipped"] == 0
    assert sum(losses[-15:]) / 15 < 0.8 * sum(losses[:15]) / 15
    assert model.mask_classes == 8  # background + 7 shapes
    train_codes = CodeShardSet(data["codes"], split="train")
    report = evaluate(
        model,
        train_codes,
        load_tokenizer(data["tokenizer"]).model,
        _real(train_codes),
        tasks=("semantic",),
        progress=False,
    )
    nll = report["nll"]
    assert nll["uniform"] == pytest.approx(math.log(64))
    assert nll["null_condition"] < nll["uniform"]
    # the mask says where objects are: it lowers the NLL of the codes it was trained on
    assert nll["mask_condition"] < nll["null_condition"]


def test_evaluate_reports_every_task_beside_its_references(
    trained: tuple[GenerationModel, dict[str, Any]], data: dict[str, Path]
) -> None:
    model, _ = trained
    val = CodeShardSet(data["codes"], split="val")
    decoder = load_tokenizer(data["tokenizer"]).model
    report = evaluate(model, val, decoder, _real(val), progress=False)
    assert set(report["tasks"]) == {"unconditional", "completion", "semantic", "text_to_image"}
    protocol = report["protocol"]
    assert protocol["num_samples"] == 12 and protocol["split"] == "val"
    assert protocol["sampling"]["guidance_scale"] == 2.0 and protocol["feature_network"] == "FD-EffLite0"
    for task, result in report["tasks"].items():
        assert math.isfinite(result["fd"]["samples"]) and result["fd"]["samples"] >= 0, task
        assert len(result["examples"]) == 3
    ref = report["reference"]["fd"]
    assert ref["reconstructions"] >= 0 and ref["unigram_baseline"] > ref["reconstructions"]
    completion = report["tasks"]["completion"]
    assert completion["protocol"]["given_code_rows"] == 2 and completion["given_codes_unchanged"]
    example = completion["examples"][0]
    given = val[[str(val[i]["id"]) for i in range(len(val))].index(example["id"])]["indices"]
    assert torch.equal(torch.tensor(example["indices"])[:2], given[:2])
    # over the given rows the completion decodes close to the tokenizer's own reconstruction
    half = completion["given_half"]
    assert abs(half["samples"]["psnr_db"] - half["reconstructions"]["psnr_db"]) < 3.0
    assert report["ids"][:8] == [str(val[i]["id"]) for i in range(8)]


def test_save_load_round_trip_gives_identical_samples(
    trained: tuple[GenerationModel, dict[str, Any]], tmp_path: Path
) -> None:
    model, _ = trained
    folder = model.save_pretrained(tmp_path / "gen")
    again = GenerationModel.from_pretrained(folder)
    masks = torch.zeros(2, 32, 32, dtype=torch.long)
    masks[:, 8:24, 8:24] = 3
    a = model.generator.sample(2, model.condition(masks=masks), guidance_scale=2.0, seed=5)
    b = again.generator.sample(2, again.condition(masks=masks), guidance_scale=2.0, seed=5)
    assert torch.equal(a, b)
    assert again.config == model.config and again.mask_classes == model.mask_classes
    assert torch.allclose(again.code_frequencies, model.code_frequencies)


def test_a_task_the_model_has_no_condition_for_is_refused(data: dict[str, Path]) -> None:
    codes = CodeShardSet(data["codes"], split="train")
    config = dataclasses.replace(
        CONFIG, conditions=("text",), train=dataclasses.replace(CONFIG.train, steps=1)
    )
    model = build(config, codes)
    val = CodeShardSet(data["codes"], split="val")
    with pytest.raises(ValueError, match=r"conditions \['text'\].*semantic"):
        evaluate(model, val, load_tokenizer(data["tokenizer"]).model, _real(val), tasks=("semantic",))
    with pytest.raises(ValueError, match="caption 1 is empty"):
        model.condition(captions=["a red circle", "  "])


def _rewrite_mask(codes_dir: Path, out: Path, row: int, value: int) -> Path:
    """A copy of the code shards whose first shard's row ``row`` has a mask full of class ``value``."""
    import shutil

    shutil.copytree(codes_dir, out)
    shard = sorted(out.glob("shard-*.arrow"))[0]
    table = ipc.open_file(pa.BufferReader(shard.read_bytes())).read_all()  # not mapped: rewritten below
    masks = table.column("mask").to_pylist()
    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32), value, dtype=np.uint8)).save(buffer, format="PNG")
    masks[row] = buffer.getvalue()
    table = table.set_column(table.schema.get_field_index("mask"), "mask", pa.array(masks, pa.binary()))
    with ipc.new_file(str(shard), table.schema) as writer:
        writer.write_table(table)
    manifest = json.loads((out / "manifest.json").read_text())
    from lgvq_core.checksum import file_sha256

    manifest["shards"][0]["sha256"] = file_sha256(shard)
    manifest["shards"][0]["bytes"] = shard.stat().st_size
    (out / "manifest.json").write_text(json.dumps(manifest))
    return shard


def test_a_mask_with_an_untrained_class_names_file_row_and_field(
    trained: tuple[GenerationModel, dict[str, Any]], data: dict[str, Path], tmp_path: Path
) -> None:
    model, _ = trained
    shard = _rewrite_mask(data["codes"], tmp_path / "codes", row=0, value=12)
    codes = CodeShardSet(tmp_path / "codes", split=None)
    with pytest.raises(TaskDataError) as err:
        evaluate(model, codes, load_tokenizer(data["tokenizer"]).model, _real(codes), tasks=("semantic",))
    message = str(err.value)
    assert shard.name in message and "mask" in message and "class id 12" in message and "0..7" in message


def test_cli_trains_and_evaluates_text_to_image(data: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "t2i"
    assert (
        cli_main(
            [
                "text2image",
                "train",
                "--codes",
                str(data["codes"]),
                "--out",
                str(out),
                "--steps",
                "20",
                "--set",
                "width=32",
                "--set",
                "layers=1",
                "--no-progress",
            ]
        )
        == 0
    )
    assert GenerationModel.from_pretrained(out).config.conditions == ("text",)
    assert (
        cli_main(
            [
                "text2image",
                "evaluate",
                "--codes",
                str(data["codes"]),
                "--out",
                str(out),
                "--split",
                "val",
                "--samples",
                "4",
                "--no-progress",
            ]
        )
        == 0
    )
    report = json.loads((out / "eval-val-text_to_image.json").read_text())
    assert list(report["tasks"]) == ["text_to_image"] and report["protocol"]["num_samples"] == 4
    # a text-only generator cannot synthesise from masks: the CLI says so on one line
    assert (
        cli_main(
            [
                "synthesize",
                "evaluate",
                "--codes",
                str(data["codes"]),
                "--out",
                str(out),
                "--split",
                "val",
                "--no-progress",
            ]
        )
        == 1
    )

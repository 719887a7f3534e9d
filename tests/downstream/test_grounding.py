"""Visual grounding on code shards: box frame conversion, bad-input policy, loss values, a short real training
run against its baselines, checkpoint round trip and refusal, and the ``ground`` CLI — all on real
components (a tiny frozen tokenizer, synthetic scenes with referring expressions, the MiniLM tokenizer)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
import torch
from PIL import Image

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig
from lgvq_core.models import builders
from lgvq_data.build import build_shards
from lgvq_data.schema import COL_IMAGE
from lgvq_data.sources import synthetic
from lgvq_data.transforms import ImageTransform, decode_image
from lgvq_downstream.cli import main
from lgvq_downstream.codes import CodeShardError, CodeShardSet, encode_shards
from lgvq_downstream.tasks.common import CheckpointMismatchError, TaskDataError, TrainLoopConfig
from lgvq_downstream.tasks.common.text import load_text_tokenizer
from lgvq_downstream.tasks.grounding import (
    GroundingConfig,
    GroundingDataset,
    GroundingModel,
    PreprocessedFrame,
    batch_loss,
    build,
    collate_grounding,
    evaluate,
    grounding_loss,
    predict,
    train,
)

torch.set_num_threads(1)

STORED, WIDE, SIDE = 20, 28, 16
PRE = {"size": SIDE, "resize": "shorter", "crop": "center", "hflip": False}
LOSS = LossConfig(perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1, disc_channels=8)
CONFIG = GroundingConfig(
    width=32,
    layers=2,
    heads=2,
    dropout=0.0,
    max_text_tokens=16,
    train=TrainLoopConfig(
        steps=120, batch_size=16, lr=3e-3, warmup_steps=0, schedule="constant", log_every=60
    ),
)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def _widen(row: dict) -> dict:
    """The row stretched horizontally to WIDE px (boxes too): a non-square image, cropped by the encoder."""
    image = decode_image(row[COL_IMAGE]).resize((WIDE, row["height"]), Image.BILINEAR)
    scale = WIDE / row["width"]
    boxes = [{**b, "x0": b["x0"] * scale, "x1": b["x1"] * scale} for b in row["boxes"]]
    return {**row, COL_IMAGE: _png(image), "width": WIDE, "mask": None, "boxes": boxes}


def _encode(rows: list[dict], root: Path, tokenizer_dir: Path) -> Path:
    build_shards(rows, root / "shards", source="synthetic", rows_per_shard=16)
    return Path(
        encode_shards(tokenizer_dir, root / "shards", root / "codes", batch_size=16, progress=False).root
    )


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    encoder = EncoderConfig(
        resolution=SIDE,
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        z_channels=8,
        norm_groups=4,
    )
    torch.manual_seed(0)
    model = builders.vqgan(
        encoder=encoder, quantizer=QuantizerConfig(kind="vq", codebook_size=32, embed_dim=8), loss=LOSS
    )
    with torch.no_grad():  # spread the codes so the untrained encoder uses many of them
        model.quantizer.codebook.normal_(std=0.15)
    folder = tmp_path_factory.mktemp("tok") / "vq"
    model.eval().save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def codes(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 synthetic scenes (train/val/test) with referring expressions; every fourth one 28×20 px."""
    rows = list(synthetic.records(24, image_size=STORED, seed=3, val_fraction=0.2, test_fraction=0.2))
    rows = [_widen(row) if i % 4 == 0 else row for i, row in enumerate(rows)]
    return _encode(rows, tmp_path_factory.mktemp("ground"), tokenizer_dir)


@pytest.fixture(scope="module")
def text_tokenizer():
    return load_text_tokenizer("minilm")


@pytest.fixture(scope="module")
def train_set(codes: Path, text_tokenizer) -> GroundingDataset:
    return GroundingDataset(codes, "train", text_tokenizer, max_text_tokens=CONFIG.max_text_tokens)


def _full_loss(model: GroundingModel, dataset: GroundingDataset) -> float:
    """The loss over every expression at once, in eval mode (deterministic)."""
    model.eval()
    with torch.no_grad():
        return float(
            batch_loss(model, collate_grounding([dataset[i] for i in range(len(dataset))], model.vocab)).total
        )


@pytest.fixture(scope="module")
def trained(train_set: GroundingDataset) -> tuple[GroundingModel, dict]:
    """A model trained 120 steps; the history gains ``initial_loss`` (the full-set loss before training)."""
    torch.manual_seed(0)
    model = build(CONFIG, train_set)
    initial = _full_loss(model, train_set)
    history = train(model, train_set, progress=False)
    return model, {**history, "initial_loss": initial}


def _rewrite_codes(src: Path, dst: Path, change) -> Path:
    """Copy a code-shard directory, passing every shard table through ``change(table) -> table``."""
    shutil.copytree(src, dst)
    for path in sorted(dst.glob("*.arrow")):
        with pa.OSFile(str(path), "rb") as source:  # read into memory: the file is replaced below
            table = change(pa.ipc.open_file(source).read_all())
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp.replace(path)
    return dst


# ---------------------------------------------------------------------------------------------- box frame


def test_box_frame_matches_hand_computed_values_for_non_square_images() -> None:
    # 28×20 → shorter side 20 → 16: 22.4 rounds to 22 px wide, crop x from 3; 16 px high, no vertical crop.
    wide = PreprocessedFrame.of(28, 20, PRE)
    assert (wide.scale_x, wide.scale_y, wide.left, wide.top) == (22 / 28, 0.8, 3, 0)
    assert wide.normalise((7, 5, 21, 15)) == pytest.approx((2.5 / 16, 4 / 16, 13.5 / 16, 12 / 16))
    # 20×30 → 16×24, crop y from 4; the box's bottom (25 px → 20) is clipped to the crop (16).
    tall = PreprocessedFrame.of(20, 30, PRE)
    assert tall.normalise((5, 10, 15, 25)) == pytest.approx((0.25, 0.25, 0.75, 1.0))
    # A box inside the cropped-away margin keeps no width.
    x0, _, x1, _ = wide.normalise((0, 0, 2, 20))
    assert x0 == x1 == 0.0
    # "exact" resize squeezes, no crop.
    assert PreprocessedFrame.of(28, 20, {**PRE, "resize": "exact"}).normalise(
        (7, 5, 21, 15)
    ) == pytest.approx((0.25, 0.25, 0.75, 0.75))
    with pytest.raises(ValueError, match="center crop, no flip"):
        PreprocessedFrame.of(28, 20, {**PRE, "crop": "random"})


@pytest.mark.parametrize("size", [(28, 20), (20, 30), (33, 17)])
def test_box_frame_agrees_with_the_encoders_image_transform(size: tuple[int, int]) -> None:
    boxes = np.array([[1.0, 2.0, 9.5, 11.0], [6.0, 0.0, size[0], size[1]]], dtype=np.float32)
    image = Image.new("RGB", size)
    expected = ImageTransform(size=SIDE)(image, boxes=boxes).boxes.numpy() / SIDE
    frame = PreprocessedFrame.of(*size, PRE)
    got = np.array([frame.normalise(b) for b in boxes.tolist()])
    np.testing.assert_allclose(got, expected, atol=1e-5)


# ---------------------------------------------------------------------------------------------- data


def test_samples_carry_minilm_tokens_codes_and_in_frame_boxes(
    codes: Path, train_set: GroundingDataset, text_tokenizer
) -> None:
    report = train_set.report()
    assert report["expressions"] == len(train_set) > report["images"] > 0
    assert report["bad_input"]["skipped"] == 0
    assert all(0.0 <= v <= 1.0 for v in train_set.boxes.flatten().tolist())
    assert bool((train_set.boxes[:, 2:] > train_set.boxes[:, :2]).all())
    full = build(
        GroundingConfig(width=16, layers=1, heads=2, text_vocab="full", init_from_codebook=False), train_set
    )
    batch = collate_grounding([train_set[i] for i in range(3)], full.vocab)
    assert batch["codes"].shape == (3, 8, 8) and batch["boxes"].shape == (3, 4)
    for b in range(3):  # "full" vocabulary: exactly the MiniLM ids, [CLS] … [SEP]
        expected = text_tokenizer(train_set.items[b].expression)["input_ids"]
        assert batch["tokens"][b][batch["text_mask"][b]].tolist() == expected
    # Each target is its ref's box taken through that row's own resize + crop (28×20 rows included).
    rows = {}
    for sample in CodeShardSet(codes, "train"):
        rows[sample["id"]] = sample
    for item in train_set.items:
        row = rows[item.row_id]
        box = row["boxes"][row["refs"][item.ref]["box_index"]]
        frame = PreprocessedFrame.of(row["width"], row["height"], PRE)
        assert item.box == pytest.approx(frame.normalise([box[k] for k in ("x0", "y0", "x1", "y1")]))
    assert any(rows[item.row_id]["width"] == WIDE for item in train_set.items)


def test_missing_refs_column_and_empty_refs_are_refused_naming_the_field(
    codes: Path, text_tokenizer, tmp_path: Path
) -> None:
    dropped = _rewrite_codes(codes, tmp_path / "dropped", lambda t: t.drop_columns(["refs"]))
    with pytest.raises(CodeShardError, match="no column 'refs'"):
        GroundingDataset(dropped, "train", text_tokenizer)

    def null_refs(table: pa.Table) -> pa.Table:
        index = table.schema.get_field_index("refs")
        return table.set_column(index, "refs", pa.nulls(table.num_rows, table.schema.field("refs").type))

    empty = _rewrite_codes(codes, tmp_path / "empty", null_refs)
    with pytest.raises(CodeShardError, match="no usable referring expressions in field 'refs'"):
        GroundingDataset(empty, "train", text_tokenizer)


@pytest.fixture(scope="module")
def bad_codes(tokenizer_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int]:
    """Six scenes; row 0 (train) has a box past the image's right edge, row 1 (val) an empty expression, row
    2 (test) an over-long one; rows 3–5 (one per split) are clean. Returns (codes, expressions, expressions
    that point at the bad box)."""
    rows = list(synthetic.records(6, image_size=STORED, seed=4))
    for row, split in zip(rows, ["train", "val", "test"] * 2, strict=True):
        row["split"] = split
    rows[0]["boxes"][0] = {**rows[0]["boxes"][0], "x1": STORED + 5.0}
    rows[1]["refs"][0] = {**rows[1]["refs"][0], "expression": "  "}
    rows[2]["refs"][0] = {**rows[2]["refs"][0], "expression": "the " + "very " * 30 + "big circle"}
    total = sum(len(row["refs"]) for row in rows)
    at_bad_box = sum(ref["box_index"] == 0 for ref in rows[0]["refs"])
    return _encode(rows, tmp_path_factory.mktemp("bad"), tokenizer_dir), total, at_bad_box


@pytest.mark.parametrize(
    ("split", "row", "field", "reason"),
    [
        ("train", 0, "boxes[0]", "lies outside the 20×20 image"),
        ("val", 1, "refs[0].expression", "empty expression"),
        ("test", 2, "refs[0].expression", "> max_text_tokens 16"),
    ],
)
def test_bad_rows_raise_naming_shard_row_and_field(
    bad_codes: tuple[Path, int, int], text_tokenizer, split: str, row: int, field: str, reason: str
) -> None:
    with pytest.raises(TaskDataError) as info:
        GroundingDataset(bad_codes[0], split, text_tokenizer, max_text_tokens=16)
    err = info.value
    assert (Path(err.file).name, err.row, err.field) == ("shard-00000.arrow", row, field)
    assert f"row {row}" in str(err) and repr(field) in str(err) and reason in str(err)


def test_bad_rows_are_skipped_and_counted_with_on_error_skip(
    bad_codes: tuple[Path, int, int], text_tokenizer
) -> None:
    path, total, at_bad_box = bad_codes
    dataset = GroundingDataset(path, None, text_tokenizer, max_text_tokens=16, on_error="skip")
    report = dataset.report()["bad_input"]
    assert at_bad_box >= 1
    assert report["by_field"] == {"boxes": at_bad_box, "refs": 2}
    assert report["skipped"] == at_bad_box + 2 == total - len(dataset)
    assert all(item.expression.strip() and len(item.expression) < 100 for item in dataset.items)
    assert not any(item.row == 0 and item.ref == 0 for item in dataset.items)


# ---------------------------------------------------------------------------------------------- loss


def test_loss_matches_hand_computed_l1_and_giou() -> None:
    pred = torch.tensor([[0.5, 0.5, 0.5, 0.5]])  # corners (0.25, 0.25, 0.75, 0.75)
    target = torch.tensor([[0.0, 0.0, 0.5, 0.5]])  # centre (0.25, 0.25), size 0.5
    loss = grounding_loss(pred, target, l1_weight=5.0, giou_weight=2.0)
    iou = 0.0625 / 0.4375
    giou = iou - (0.5625 - 0.4375) / 0.5625
    assert float(loss.l1) == pytest.approx(0.125)
    assert float(loss.giou) == pytest.approx(1 - giou)
    assert float(loss.total) == pytest.approx(5 * 0.125 + 2 * (1 - giou))
    perfect = grounding_loss(torch.tensor([[0.25, 0.25, 0.5, 0.5]]), target, l1_weight=1.0, giou_weight=3.0)
    assert float(perfect.total) == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------------------------------------- training


def test_training_lowers_the_loss_and_beats_the_mean_box_on_the_training_split(
    trained: tuple[GroundingModel, dict], train_set: GroundingDataset
) -> None:
    """120 steps on ~70 expressions of 14 images. What this shows: the loop, the loss and the box head learn —
    the model fits its *training* expressions far better than the best constant box. It does not show
    grounding on unseen data (nothing here is held out), nor that the codes matter: at this size the model can
    answer partly from the expression alone (the report's shuffled-codes control measures how much the codes
    add)."""
    model, history = trained
    losses = history["loss"]
    assert history["steps"] == CONFIG.train.steps == len(losses)
    assert np.mean(losses[-10:]) < 0.9 * np.mean(losses[:10])
    assert _full_loss(model, train_set) < 0.85 * history["initial_loss"]
    report = evaluate(model, train_set)
    assert report["num_samples"] == len(train_set)
    ours, mean_box = report["model"], report["baselines"]["mean_train_box"]
    assert ours["mean_iou"] > mean_box["mean_iou"] + 0.1
    assert ours["accuracy@0.5"] > mean_box["accuracy@0.5"]
    assert set(report["baselines"]) == {"mean_train_box", "centre_box", "shuffled_codes"}
    # The mean-box baseline is what train() recorded: the mean training (cx, cy, w, h).
    torch.testing.assert_close(model.mean_train_box, train_set.mean_box())
    example = report["examples"][0]
    assert len(example["indices"]) == 8 and 0.0 <= example["iou"] <= 1.0


def test_save_load_round_trip_gives_identical_predictions(
    trained: tuple[GroundingModel, dict], train_set: GroundingDataset, tmp_path: Path
) -> None:
    model, _ = trained
    model.save_pretrained(tmp_path / "ck")
    loaded = GroundingModel.from_pretrained(tmp_path / "ck")
    assert loaded.config == model.config and loaded.vocab.to_dict() == model.vocab.to_dict()
    assert loaded.tokenizer_info == model.tokenizer_info
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    assert torch.equal(predict(loaded, train_set), predict(model, train_set))


def test_evaluation_refuses_codes_of_another_tokenizer_naming_both(
    trained: tuple[GroundingModel, dict], codes: Path, text_tokenizer, tmp_path: Path
) -> None:
    model, _ = trained
    other = tmp_path / "other"
    shutil.copytree(codes, other)
    manifest = json.loads((other / "manifest.json").read_text())
    ours = manifest["tokenizer"]["config_sha256"]
    manifest["tokenizer"]["config_sha256"] = "f" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointMismatchError) as info:
        evaluate(model, GroundingDataset(other, "train", text_tokenizer))
    assert f"config_sha256: checkpoint {ours}, code shards {'f' * 64}" in str(info.value)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_trains_and_evaluates_end_to_end(
    codes: Path, tokenizer_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ck, ev = tmp_path / "ck", tmp_path / "ev"
    tiny = ["--width", "16", "--layers", "1", "--set", "heads=2", "--batch-size", "8", "--no-progress"]
    assert main(["ground", "train", "--codes", str(codes), "--out", str(ck), "--steps", "3", *tiny]) == 0
    assert len(json.loads((ck / "history.json").read_text())["loss"]) == 3
    saved = json.loads((ck / "task.json").read_text())["config"]
    assert (saved["width"], saved["layers"], saved["heads"], saved["train"]["batch_size"]) == (16, 1, 2, 8)
    args = ["ground", "evaluate", "--codes", str(codes), "--model", str(ck), "--out", str(ev)]
    assert main([*args, "--tokenizer", str(tokenizer_dir), "--examples", "3"]) == 0
    metrics = json.loads((ev / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["num_samples"] > 0
    assert {"accuracy@0.5", "mean_iou"} <= set(metrics["model"])
    assert len(metrics["examples"]) == 3 and "indices" not in metrics["examples"][0]
    with Image.open(ev / "examples.png") as figure:
        assert figure.format == "PNG" and figure.size[0] > 3 * 160

    dropped = _rewrite_codes(codes, tmp_path / "dropped", lambda t: t.drop_columns(["refs"]))
    capsys.readouterr()
    assert main(["ground", "evaluate", "--codes", str(dropped), "--out", str(ck)]) == 1  # --model = --out
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lgvq-downstream ground: error:" in err[0] and "'refs'" in err[0]

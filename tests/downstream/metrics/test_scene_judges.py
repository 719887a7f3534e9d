"""Scene judges on real components: tiny lgvq-data shards of synthetic scenes (32 px, 480 train / 160 test
rows), both judges trained once by ``fit_scene_judges`` (250 steps of 32 each, ~30 s on one thread), scored on
the held-out rows against a shuffled-pairing control; plus hand-computed mIoU, targets, components,
intervals, save/load and bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lgvq_data.build import build_shards
from lgvq_data.sources import synthetic
from lgvq_data.transforms import decode_image
from lgvq_downstream.metrics.components import connected_components
from lgvq_downstream.metrics.intervals import mean_interval
from lgvq_downstream.metrics.judge_scores import derangement, per_image_miou
from lgvq_downstream.metrics.scene_judges import (
    condition_consistency,
    fit_scene_judges,
    judge_accuracy,
    load_judges,
    load_scene_split,
    mean_iou,
    segmentation_consistency,
    train_attribute_judge,
    train_segmenter_judge,
)
from lgvq_downstream.metrics.scene_targets import (
    ATTRIBUTE_NAMES,
    NUM_ATTRIBUTES,
    attribute_targets,
    object_map,
    scene_objects,
)

SIDE = 32
N_ROWS = 640
STEPS = 250
BATCH = 32


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    rows = list(synthetic.records(N_ROWS, image_size=SIDE, seed=7, val_fraction=0.0, test_fraction=0.25))
    return build_shards(
        rows, tmp_path_factory.mktemp("scenes") / "shards", source="synthetic", rows_per_shard=256
    )


@pytest.fixture(scope="module")
def fitted(shards: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("judges") / "judges"
    metrics = fit_scene_judges(shards, out, steps=STEPS, batch_size=BATCH, seed=0)
    return out, metrics


@pytest.fixture(scope="module")
def held_out(shards: Path):
    return load_scene_split(shards, "test")


# ------------------------------------------------------------------------------------------- accuracy


def test_attribute_judge_finds_the_objects_of_held_out_images_and_not_of_shuffled_ones(fitted) -> None:
    _, metrics = fitted
    scores = metrics["attribute"]["held_out"]
    real, shuffled = scores["real"]["object_recall"], scores["shuffled"]["object_recall"]
    assert metrics["data"]["split_eval"] == "test" and metrics["data"]["eval_images"] == 160
    assert real["mean"] >= 0.6, real
    assert shuffled["mean"] <= 0.15, shuffled
    assert real["low"] > shuffled["high"] + 0.3
    assert scores["real"]["colour_f1"]["mean"] >= 0.9
    assert scores["real"]["shape_f1"]["mean"] >= 0.7


def test_segmenter_judge_follows_held_out_masks_and_not_shuffled_ones(fitted) -> None:
    _, metrics = fitted
    scores = metrics["segmenter"]["held_out"]
    real, shuffled = scores["real"]["miou"], scores["shuffled"]["miou"]
    assert real["mean"] >= 0.6, real
    assert shuffled["mean"] <= 0.35, shuffled
    assert real["low"] > shuffled["high"] + 0.2
    assert scores["real"]["pixel_accuracy"]["mean"] > scores["shuffled"]["pixel_accuracy"]["mean"] + 0.1


def test_noise_images_score_like_the_control(fitted, held_out) -> None:
    attribute, segmenter = load_judges(fitted[0])
    noise = torch.randint(
        0, 256, held_out.images.shape, dtype=torch.uint8, generator=torch.Generator().manual_seed(0)
    )
    assert condition_consistency(attribute, noise, held_out.targets)["object_recall"]["mean"] < 0.2
    assert segmentation_consistency(segmenter, noise, held_out.masks)["miou"]["mean"] < 0.4


def test_judges_json_records_held_out_accuracy_and_settings(fitted) -> None:
    folder, metrics = fitted
    record = json.loads((folder / "judges.json").read_text())
    assert record["format"] == "lgvq-scene-judges"
    assert set(record["judges"]) == {"attribute", "segmenter"}
    assert record["metrics"]["attribute"]["held_out"]["real"]["object_recall"]["mean"] == pytest.approx(
        metrics["attribute"]["held_out"]["real"]["object_recall"]["mean"]
    )
    assert "per_image" not in record["metrics"]["segmenter"]["held_out"]["real"]
    assert record["metrics"]["training"]["steps"] == STEPS
    assert sorted(p.name for p in folder.iterdir()) == [
        "attribute_judge.safetensors",
        "judges.json",
        "segmenter_judge.safetensors",
    ]


def test_save_load_round_trip_gives_identical_predictions(fitted, held_out, tmp_path: Path) -> None:
    loaded = load_judges(fitted[0])
    images = held_out.images[:24]
    probabilities = loaded.attribute.probabilities(images)
    classes = loaded.segmenter.predict(images)
    from lgvq_downstream.metrics.scene_judges import save_judges

    copy = save_judges(tmp_path / "copy", loaded.attribute, loaded.segmenter, record={"note": "copy"})
    again = load_judges(copy)
    assert torch.equal(again.attribute.probabilities(images), probabilities)
    assert torch.equal(again.segmenter.predict(images), classes)
    assert again.record["note"] == "copy"
    # the same images as floats in [-1, 1] (what a tokenizer decodes to) give the same answers
    floats = images.float() / 127.5 - 1.0
    assert torch.allclose(again.attribute.probabilities(floats), probabilities, atol=1e-5)


def test_load_refuses_changed_weights(fitted, tmp_path: Path) -> None:
    import shutil

    folder = tmp_path / "judges"
    shutil.copytree(fitted[0], folder)
    weights = folder / "segmenter_judge.safetensors"
    weights.write_bytes(weights.read_bytes()[:-8] + b"\0" * 8)
    with pytest.raises(ValueError, match="segmenter_judge.safetensors: sha256"):
        load_judges(folder)
    with pytest.raises(FileNotFoundError, match="judges.json"):
        load_judges(tmp_path)


# ------------------------------------------------------------------------------------------ hand checks


def test_mean_iou_by_hand() -> None:
    prediction = torch.tensor([[0, 0, 1], [0, 2, 2], [1, 1, 2]])
    target = torch.tensor([[0, 0, 1], [0, 1, 2], [3, 1, 2]])
    # class 0: |P∩T| = 3, |P∪T| = 3 → 1; class 1: P {(0,2),(2,0),(2,1)}, T {(0,2),(1,1),(2,1)} → 2/4;
    # class 2: P {(1,1),(1,2),(2,2)}, T {(1,2),(2,2)} → 2/3; class 3: P {}, T {(2,0)} → 0; class 4: absent.
    expected = (1.0 + 0.5 + 2 / 3 + 0.0) / 4
    assert mean_iou(prediction, target, num_classes=5) == pytest.approx(expected)
    assert per_image_miou(prediction[None], target[None], 5).item() == pytest.approx(expected)
    assert mean_iou(target, target, 5) == 1.0


def test_per_image_miou_matches_the_loop() -> None:
    g = torch.Generator().manual_seed(1)
    prediction = torch.randint(0, 4, (6, 7, 5), generator=g)
    target = torch.randint(0, 4, (6, 7, 5), generator=g)
    vectorised = per_image_miou(prediction, target, 8)
    assert vectorised.tolist() == pytest.approx(
        [mean_iou(p, t, 8) for p, t in zip(prediction, target, strict=True)]
    )


def test_targets_and_object_map_of_a_row() -> None:
    row = next(synthetic.records(1, image_size=SIDE, seed=3))
    objects = scene_objects(row)
    assert [shape for _, shape in objects] == [b["label"] for b in row["boxes"]]
    target = attribute_targets(row)
    assert target.shape == (NUM_ATTRIBUTES,)
    on = {ATTRIBUTE_NAMES[i] for i in target.nonzero().flatten().tolist()}
    assert on == (
        {f"shape:{s}" for _, s in objects}
        | {f"colour:{c}" for c, _ in objects}
        | {f"pair:{c} {s}" for c, s in objects}
    )
    mask = torch.from_numpy(np.array(decode_image(row["mask"], mode="L"), dtype=np.int64))
    objects_map = object_map(row)
    # the shape class recovered from the object map is the mask, everywhere
    assert torch.equal(torch.where(objects_map > 0, 1 + (objects_map - 1) // 10, 0), mask)


def test_scene_objects_names_the_row_when_a_colour_is_missing() -> None:
    row = next(synthetic.records(1, image_size=SIDE, seed=3))
    row = {**row, "refs": []}
    with pytest.raises(ValueError, match=r"row synthetic-3-0000000: no reference .* box 0"):
        scene_objects(row)


def test_connected_components_by_hand() -> None:
    grid = torch.tensor(
        [
            [1, 1, 0, 0, 1],
            [0, 1, 0, 1, 1],
            [0, 0, 0, 0, 0],
            [1, 0, 1, 0, 0],  # (3,0) and (4,1) touch only diagonally: two components under 4-connectivity
            [0, 1, 0, 0, 0],
        ],
        dtype=torch.bool,
    )
    labels = connected_components(grid[None])[0]
    assert (labels[~grid] == 0).all()
    groups = {
        tuple(sorted(map(tuple, (labels == v).nonzero().tolist()))) for v in labels.unique().tolist() if v
    }
    assert groups == {
        ((0, 0), (0, 1), (1, 1)),
        ((0, 4), (1, 3), (1, 4)),
        ((3, 0),),
        ((3, 2),),
        ((4, 1),),
    }


def test_intervals_and_derangement() -> None:
    values = torch.tensor([0.0, 1.0] * 50)
    normal = mean_interval(values, "normal")
    assert normal["mean"] == 0.5
    assert normal["high"] - 0.5 == pytest.approx(1.96 * values.std().item() / 10, rel=1e-3)
    boot = mean_interval(values, "bootstrap", seed=3)
    assert boot["low"] < 0.5 < boot["high"] and boot["high"] - boot["low"] < 0.3
    assert boot == mean_interval(values, "bootstrap", seed=3)
    perm = derangement(7, seed=2)
    assert sorted(perm.tolist()) == list(range(7)) and (perm != torch.arange(7)).all()


# ------------------------------------------------------------------------------------------- bad input


def test_bad_inputs_give_errors_naming_the_value(fitted, held_out) -> None:
    attribute, segmenter = load_judges(fitted[0])
    masks = held_out.masks[:4].clone()
    masks[0, 3, 3] = 9
    with pytest.raises(ValueError, match="class id 9, outside the 8 classes 0..7"):
        segmentation_consistency(segmenter, held_out.images[:4], masks)
    with pytest.raises(ValueError, match=r"B×3×H×W, got shape \(4, 1, 32, 32\)"):
        segmentation_consistency(segmenter, held_out.images[:4, :1], held_out.masks[:4])
    with pytest.raises(ValueError, match=r"B×3×H×W, got shape \(3, 32, 32\)"):
        condition_consistency(attribute, held_out.images[0], held_out.targets[:1])
    with pytest.raises(ValueError, match="4 images but 3 target rows"):
        condition_consistency(attribute, held_out.images[:4], held_out.targets[:3])
    with pytest.raises(ValueError, match="masks must hold integer class ids, got dtype torch.float32"):
        judge_accuracy(segmenter, held_out.images[:4], held_out.masks[:4].float())
    with pytest.raises(ValueError, match="NaN or inf"):
        condition_consistency(attribute, torch.full((2, 3, 32, 32), float("nan")), held_out.targets[:2])
    objects = held_out.object_maps[:4].clone()
    objects[1, 0, 0] = 80
    with pytest.raises(ValueError, match="object_maps hold class id 80, outside the 71 classes"):
        train_attribute_judge(held_out.images[:4], objects, steps=1)
    with pytest.raises(ValueError, match="steps must be >= 1, got 0"):
        train_segmenter_judge(held_out.images[:4], held_out.masks[:4], steps=0)

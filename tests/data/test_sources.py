"""Every real-data source on a tiny replica of its published layout, built here."""

from __future__ import annotations

import gzip
import json
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lgvq_data.build import BadInputError
from lgvq_data.cli import main
from lgvq_data.dataset import ShardDataset, collate
from lgvq_data.shards import ShardSet, read_manifest
from lgvq_data.sources import celeba_hq, coco, cub, fashion_mnist, folder, textcaps
from lgvq_data.sources.common import SourceLayoutError, load_data_pickle
from lgvq_data.validate import validate_shards


def _image(path: Path, size: tuple[int, int] = (20, 14), value: int = 90, fmt: str = "JPEG") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path, format=fmt)


def _rows(out: Path) -> dict[str, dict]:
    return {r["id"]: r for r in ShardSet.open(out).iter_rows()}


# ---------------------------------------------------------------- generic folder


def _folder_replica(root: Path) -> None:
    _image(root / "a" / "cat.jpg", (20, 14))
    _image(root / "dog.png", (16, 16), fmt="PNG")
    lines = [
        json.dumps({"file": "a/cat.jpg", "captions": ["a cat", "a small cat"], "split": "val"}),
        json.dumps({"file": "dog.png", "caption": "a dog", "id": "dog-1"}),
    ]
    (root / "captions.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_folder_jsonl(tmp_path: Path) -> None:
    _folder_replica(tmp_path / "src")
    rows = _rows(folder.build(tmp_path / "out", tmp_path / "src"))
    assert set(rows) == {"a/cat", "dog-1"}
    assert rows["a/cat"]["captions"] == ["a cat", "a small cat"] and rows["a/cat"]["split"] == "val"
    assert (rows["a/cat"]["width"], rows["a/cat"]["height"]) == (20, 14)
    assert rows["a/cat"]["image"] == (tmp_path / "src" / "a" / "cat.jpg").read_bytes()  # JPEG kept as is
    assert validate_shards(tmp_path / "out").success


def test_folder_csv_merges_caption_rows(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _image(root / "x.jpg")
    (root / "captions.csv").write_text(
        "file,caption,split\nx.jpg,first,train\nx.jpg,second,train\n", encoding="utf-8"
    )
    rows = _rows(folder.build(tmp_path / "out", root))
    assert rows["x"]["captions"] == ["first", "second"]


def test_folder_reads_imagefolder_metadata_jsonl(tmp_path: Path) -> None:
    """Hugging Face ``imagefolder``: ``metadata.jsonl`` with ``file_name`` and a ``text`` column, found in the
    folder; ``image`` / ``caption`` (the LG diagnostics form) read in the same file."""
    root = tmp_path / "src"
    _image(root / "train" / "0001.jpg", (20, 14))
    _image(root / "dog.png", (16, 16), fmt="PNG")
    lines = [
        {"file_name": "train/0001.jpg", "text": "a cat on a mat", "split": "train", "label": 4},
        {"image": "dog.png", "caption": "a dog", "id": "dog-1"},
    ]
    (root / "metadata.jsonl").write_text(
        "\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8"
    )
    rows = _rows(folder.build(tmp_path / "out", root))
    assert set(rows) == {"train/0001", "dog-1"}
    assert rows["train/0001"]["captions"] == ["a cat on a mat"] and rows["train/0001"]["split"] == "train"
    assert rows["train/0001"]["image"] == (root / "train" / "0001.jpg").read_bytes()
    assert rows["dog-1"]["captions"] == ["a dog"]


def test_folder_csv_takes_imagefolder_columns(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _image(root / "x.jpg")
    (root / "metadata.csv").write_text("file_name,text\nx.jpg,first\nx.jpg,second\n", encoding="utf-8")
    assert _rows(folder.build(tmp_path / "out", root))["x"]["captions"] == ["first", "second"]
    (root / "metadata.csv").write_text("path,label\nx.jpg,first\n", encoding="utf-8")
    with pytest.raises(SourceLayoutError, match=r"metadata.csv: CSV header.*image column \(file_name"):
        folder.build(tmp_path / "out", root)


def test_folder_bad_line_names_file_line_and_expected_keys(tmp_path: Path) -> None:
    root = tmp_path / "src"
    _image(root / "x.jpg")
    lines = [{"file_name": "x.jpg", "text": "fine"}, {"path": "x.jpg", "label": "a cat"}]
    (root / "metadata.jsonl").write_text(
        "\n".join(json.dumps(line) for line in lines) + "\n", encoding="utf-8"
    )
    expected = (
        r"metadata\.jsonl, row line 2: expected an image key \(file_name, file or image\) and a caption key "
        r"\(text, caption or captions\); found \['label', 'path'\]"
    )
    with pytest.raises(BadInputError, match=expected):
        folder.build(tmp_path / "out", root, on_error="fail")
    (root / "metadata.jsonl").write_text(json.dumps({"file": "x.jpg", "captions": [1, 2]}) + "\n")
    with pytest.raises(BadInputError, match=r"row line 1: 'captions' must be a string or a list of strings"):
        folder.build(tmp_path / "out", root, on_error="fail")


def _bad_folder(root: Path) -> None:
    _folder_replica(root)
    (root / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with open(root / "captions.jsonl", "ab") as handle:
        handle.write(json.dumps({"file": "broken.jpg", "caption": "corrupt"}).encode() + b"\n")  # line 3
        handle.write(
            json.dumps({"file": "dog.png", "caption": "   "}).encode() + b"\n"
        )  # line 4: empty caption
        handle.write(b'{"file": "a/cat.jpg", "caption": "caf\xe9"}\n')  # line 5: latin-1, not UTF-8
        handle.write(
            json.dumps({"file": "dog.png", "caption": "again", "id": "dog-1"}).encode() + b"\n"
        )  # dup
        handle.write(json.dumps({"file": "gone.jpg", "caption": "missing"}).encode() + b"\n")  # line 7


def test_bad_input_skip_writes_rejects_report(tmp_path: Path) -> None:
    _bad_folder(tmp_path / "src")
    out = folder.build(tmp_path / "out", tmp_path / "src", on_error="skip")
    assert set(_rows(out)) == {"a/cat", "dog-1"}
    rejects = json.loads((out / "rejects.json").read_text())
    assert rejects["count"] == 5
    by_reason = {r["reason"]: r for r in rejects["rejects"]}
    corrupt = next(r for r in rejects["rejects"] if "does not decode" in r["reason"])
    assert corrupt["file"].endswith("broken.jpg") and corrupt["row"] == "broken"
    assert any("empty" in reason for reason in by_reason)
    utf8 = next(r for r in rejects["rejects"] if "UTF-8" in r["reason"])
    assert utf8["row"] == "line 5" and utf8["file"].endswith("captions.jsonl")
    dup = next(r for r in rejects["rejects"] if "duplicate id" in r["reason"])
    assert dup["row"] == "dog-1" and dup["file"].endswith("captions.jsonl:6")
    assert any(
        r["reason"] == "image file is missing" and r["file"].endswith("gone.jpg") for r in rejects["rejects"]
    )
    assert read_manifest(out)["metadata"]["rejected_rows"] == 5


def test_bad_input_fail_leaves_no_output(tmp_path: Path) -> None:
    _bad_folder(tmp_path / "src")
    with pytest.raises(BadInputError, match=r"broken\.jpg, row broken: image does not decode"):
        folder.build(tmp_path / "out", tmp_path / "src", on_error="fail")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["src"]


def test_missing_caption_file_is_a_clear_error(tmp_path: Path) -> None:
    _image(tmp_path / "src" / "x.jpg")
    with pytest.raises(SourceLayoutError, match="missing caption file"):
        folder.build(tmp_path / "out", tmp_path / "src")
    assert (
        main(["build", "folder", "--root", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--quiet"])
        == 2
    )
    assert not (tmp_path / "out").exists()


def test_cli_build_folder_skip(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _bad_folder(tmp_path / "src")
    argv = ["build", "folder", "--root", str(tmp_path / "src"), "--out", str(tmp_path / "out"), "--quiet"]
    assert main(argv + ["--on-error", "fail"]) == 2
    assert "broken.jpg" in capsys.readouterr().err
    assert main(argv + ["--on-error", "skip"]) == 0
    assert "rejected 5" in capsys.readouterr().out


# ---------------------------------------------------------------- CUB-200-2011 + Reed captions


def test_cub(tmp_path: Path) -> None:
    root = tmp_path / "CUB_200_2011"
    files = [
        "001.Black_footed_Albatross/Black_Footed_Albatross_0001_796111.jpg",
        "002.Laysan_Albatross/Laysan_Albatross_0002_1027.jpg",
    ]
    (root).mkdir()
    (root / "images.txt").write_text("".join(f"{i + 1} {f}\n" for i, f in enumerate(files)))
    (root / "train_test_split.txt").write_text("1 1\n2 0\n")
    (root / "bounding_boxes.txt").write_text("1 2.0 3.0 10.0 8.0\n2 0.0 0.0 30.0 30.0\n")
    for i, f in enumerate(files):
        _image(root / "images" / f, (24, 18), value=i)
        text = root / "text_c10" / Path(f).with_suffix(".txt")
        text.parent.mkdir(parents=True, exist_ok=True)
        text.write_text("this bird has a white belly\nthis bird is dark brown\n\n")
    rows = _rows(cub.build(tmp_path / "out", root))
    first = rows["cub-Black_Footed_Albatross_0001_796111"]
    assert first["split"] == "train" and rows["cub-Laysan_Albatross_0002_1027"]["split"] == "test"
    assert first["captions"] == ["this bird has a white belly", "this bird is dark brown"]
    assert first["labels"] == ["Black footed Albatross"]
    assert first["boxes"] == [
        {"label": "Black footed Albatross", "x0": 2.0, "y0": 3.0, "x1": 12.0, "y1": 11.0}
    ]
    assert rows["cub-Laysan_Albatross_0002_1027"]["boxes"][0]["x1"] == 24.0  # clipped to the image
    assert validate_shards(tmp_path / "out").success
    assert main(["build", "cub", "--root", str(root), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert _rows(tmp_path / "cli") == rows
    (root / "text_c10" / Path(files[1]).with_suffix(".txt")).unlink()
    with pytest.raises(
        BadInputError, match="Laysan_Albatross_0002_1027.txt, row cub-Laysan.*caption file is missing"
    ):
        cub.build(tmp_path / "out2", root)


# ---------------------------------------------------------------- MM-CelebA-HQ + CelebAMask-HQ


def test_celeba_hq_with_masks(tmp_path: Path) -> None:
    root = tmp_path / "MM-CelebA-HQ"
    for i in range(3):
        _image(root / "CelebA-HQ-img" / f"{i}.jpg", (16, 16), value=i)
        (root / "celeba-caption").mkdir(parents=True, exist_ok=True)
        (root / "celeba-caption" / f"{i}.txt").write_text(f"she has blond hair {i}\nshe is smiling\n")
    for split, names in (("train", ["0", "1"]), ("test", ["2"])):
        (root / split).mkdir()
        with open(root / split / "filenames.pickle", "wb") as handle:
            pickle.dump(names, handle, protocol=2)
    masks = tmp_path / "CelebAMask-HQ-mask-anno" / "0"
    masks.mkdir(parents=True)
    skin = np.zeros((8, 8), np.uint8)
    skin[2:6, 2:6] = 255
    hair = np.zeros((8, 8), np.uint8)
    hair[0:2, :] = 255
    Image.fromarray(skin).save(masks / "00001_skin.png")
    Image.fromarray(hair).save(masks / "00001_hair.png")
    out = celeba_hq.build(tmp_path / "out", root, mask_root=tmp_path / "CelebAMask-HQ-mask-anno")
    rows = _rows(out)
    assert (
        main(
            [
                "build",
                "celeba-hq",
                "--root",
                str(root),
                "--mask-root",
                str(tmp_path / "CelebAMask-HQ-mask-anno"),
                "--out",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
        == 0
    )
    assert _rows(tmp_path / "cli") == rows
    assert {r["split"] for r in rows.values()} == {"train", "test"} and rows["celeba-hq-2"]["split"] == "test"
    mask = np.asarray(Image.open(__import__("io").BytesIO(rows["celeba-hq-1"]["mask"])))
    assert mask.shape == (16, 16)  # resized (nearest) from 8×8 to the image size
    assert mask[5, 5] == celeba_hq.MASK_CLASSES.index("skin") and mask[0, 0] == celeba_hq.MASK_CLASSES.index(
        "hair"
    )
    assert rows["celeba-hq-0"].get("mask") is None
    assert validate_shards(out).success
    batch = collate([ShardDataset(out, split="train", image_size=8)[i] for i in range(2)])
    assert "masks" not in batch  # only one of the two rows has a mask


def test_data_pickle_refuses_code(tmp_path: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "filenames.pickle"
    path.write_bytes(pickle.dumps([Evil()]))
    with pytest.raises(ValueError, match="refusing to load builtins.print"):
        load_data_pickle(path)


# ---------------------------------------------------------------- MS-COCO 2014 + COCO-QA + RefCOCO


def test_coco_with_qa_and_refcoco(tmp_path: Path) -> None:
    root = tmp_path / "coco"
    (root / "annotations").mkdir(parents=True)
    ids = {"train2014": [9, 25], "val2014": [42]}
    for folder_name, image_ids in ids.items():
        images = []
        for image_id in image_ids:
            name = coco.coco_file_name(folder_name, image_id)
            _image(root / folder_name / name, (32, 24), value=image_id)
            images.append({"id": image_id, "file_name": name, "width": 32, "height": 24})
        annotations = [
            {"image_id": i, "id": 100 + k, "caption": f"caption {k} of {i}"}
            for i in image_ids
            for k in range(2)
        ]
        (root / "annotations" / f"captions_{folder_name}.json").write_text(
            json.dumps({"images": images, "annotations": annotations})
        )
    assert coco.coco_file_name("train2014", 9) == "COCO_train2014_000000000009.jpg"
    qa = tmp_path / "cocoqa" / "train"
    qa.mkdir(parents=True)
    (qa / "img_ids.txt").write_text("9\n9\n42\n")
    (qa / "questions.txt").write_text(
        "what is on the table\nhow many dogs are there\nwhat color is the car\n"
    )
    (qa / "answers.txt").write_text("cake\ntwo\nred\n")
    ref = tmp_path / "refcoco"
    ref.mkdir()
    refs = [
        {
            "image_id": 25,
            "ann_id": 7,
            "category_id": 1,
            "split": "train",
            "sentences": [{"sent": "man on left"}, {"sent": "guy in red"}],
        }
    ]
    (ref / "refs(unc).p").write_bytes(pickle.dumps(refs, protocol=2))
    (ref / "instances.json").write_text(
        json.dumps(
            {
                "annotations": [{"id": 7, "image_id": 25, "bbox": [1, 2, 10, 12], "category_id": 1}],
                "categories": [{"id": 1, "name": "person"}],
            }
        )
    )
    out = coco.build(tmp_path / "out", root, qa_root=tmp_path / "cocoqa", refcoco_root=ref)
    rows = _rows(out)
    assert (
        main(
            [
                "build",
                "coco",
                "--root",
                str(root),
                "--qa-root",
                str(tmp_path / "cocoqa"),
                "--refcoco-root",
                str(ref),
                "--folders",
                "val2014",
                "--out",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
        == 0
    )
    assert set(_rows(tmp_path / "cli")) == {"coco-42"}
    assert set(rows) == {"coco-9", "coco-25", "coco-42"}
    assert rows["coco-42"]["split"] == "val" and rows["coco-9"]["split"] == "train"
    assert rows["coco-9"]["captions"] == ["caption 0 of 9", "caption 1 of 9"]
    assert rows["coco-9"]["qa"] == [
        {"question": "what is on the table", "answer": "cake"},
        {"question": "how many dogs are there", "answer": "two"},
    ]
    assert rows["coco-25"]["boxes"] == [{"label": "person", "x0": 1.0, "y0": 2.0, "x1": 11.0, "y1": 14.0}]
    assert rows["coco-25"]["refs"] == [
        {"expression": "man on left", "box_index": 0},
        {"expression": "guy in red", "box_index": 0},
    ]
    assert validate_shards(out).success
    sample = ShardDataset(out, split="train", image_size=12)[1]
    assert sample["refs"] == [("man on left", 0), ("guy in red", 0)]
    # 32×24 → shorter side 24 → 12: scale 0.5 → 16×12, center crop left 2
    assert sample["boxes"].tolist() == [[0.0, 1.0, 3.5, 7.0]]


# ---------------------------------------------------------------- TextCaps


def test_textcaps_official_json(tmp_path: Path) -> None:
    root = tmp_path / "textcaps"
    for image_id in ("0a1b", "0c2d"):
        _image(root / "train_images" / f"{image_id}.jpg", (18, 18))
    train = {
        "data": [
            {"image_id": "0a1b", "caption_str": "a sign that says stop"},
            {"image_id": "0a1b", "caption_str": "a red stop sign"},
        ]
    }
    val = {"data": [{"image_id": "0c2d", "caption_str": "a bottle of coke"}]}
    (root / "TextCaps_0.1_train.json").write_text(json.dumps(train))
    (root / "TextCaps_0.1_val.json").write_text(json.dumps(val))
    rows = _rows(textcaps.build(tmp_path / "out", root))
    assert main(["build", "textcaps", "--root", str(root), "--out", str(tmp_path / "cli"), "--quiet"]) == 0
    assert _rows(tmp_path / "cli") == rows
    assert rows["textcaps-0a1b"]["captions"] == ["a sign that says stop", "a red stop sign"]
    assert rows["textcaps-0c2d"]["split"] == "val"


def test_textcaps_lgvq_text_layout(tmp_path: Path) -> None:
    root = tmp_path / "textcaps"
    _image(root / "train_images" / "ab.jpg", (18, 18))
    _image(root / "train_images" / "cd.jpg", (18, 18))
    (root / "text").mkdir()
    (root / "text" / "ab.txt").write_text("a book cover\n")
    (root / "text" / "cd.txt").write_bytes(b"caf\xe9 sign\n")  # not UTF-8
    (root / "train_filenames.pickle").write_bytes(pickle.dumps(["ab", "cd"], protocol=2))
    out = textcaps.build(tmp_path / "out", root, on_error="skip")
    assert set(_rows(out)) == {"textcaps-ab"}
    reject = json.loads((out / "rejects.json").read_text())["rejects"][0]
    assert reject["file"].endswith("cd.txt") and "line 1 is not valid UTF-8" in reject["reason"]


# ---------------------------------------------------------------- Fashion-MNIST scenes


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def test_fashion_mnist_scenes(tmp_path: Path) -> None:
    root = tmp_path / "fashion"
    root.mkdir()
    images = np.zeros((10, 28, 28), np.uint8)
    images[:, 6:22, 8:20] = 255  # a bright block per garment
    _write_idx(root / "train-images-idx3-ubyte.gz", images)
    _write_idx(root / "train-labels-idx1-ubyte.gz", np.arange(10))
    assert fashion_mnist.available(root)
    out = fashion_mnist.build(tmp_path / "out", n=12, image_size=32, seed=1, root=root)
    rows = list(ShardSet.open(out).iter_rows())
    assert (
        main(
            [
                "build",
                "fashion-mnist",
                "--root",
                str(root),
                "--n",
                "12",
                "--image-size",
                "32",
                "--seed",
                "1",
                "--out",
                str(tmp_path / "cli"),
                "--quiet",
            ]
        )
        == 0
    )
    assert list(ShardSet.open(tmp_path / "cli").iter_rows()) == rows
    assert len(rows) == 12
    for row in rows:
        assert len(set(row["captions"])) >= 5
        nouns = [b["label"] for b in row["boxes"]]
        assert all(n in fashion_mnist.GARMENTS for n in nouns)
        assert any(n.split()[-1] in " ".join(row["captions"]) for n in nouns)
    assert validate_shards(out).success
    regenerated = list(fashion_mnist.records(12, 32, 1, root))
    assert [(r["id"], r["captions"], r["image"]) for r in regenerated] == [
        (r["id"], r["captions"], r["image"]) for r in rows
    ]


def test_fashion_mnist_absent_or_corrupt(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert not fashion_mnist.available(tmp_path)
    assert (
        main(["build", "fashion-mnist", "--root", str(tmp_path), "--out", str(tmp_path / "out"), "--quiet"])
        == 2
    )
    assert "dataset-fashion-mnist" in capsys.readouterr().err and not (tmp_path / "out").exists()
    with pytest.raises(SourceLayoutError, match="dataset-fashion-mnist"):
        next(fashion_mnist.records(2, 32, 0, tmp_path))
    (tmp_path / "train-images-idx3-ubyte").write_bytes(
        bytes([0, 0, 8, 3]) + struct.pack(">3I", 5, 28, 28) + b"\0" * 10
    )
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(bytes([0, 0, 8, 1]) + struct.pack(">I", 5) + b"\0" * 5)
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: 26 bytes, expected"):
        next(fashion_mnist.records(2, 32, 0, tmp_path))

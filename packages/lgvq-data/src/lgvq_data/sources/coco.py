"""MS-COCO 2014 captions, with COCO-QA questions and RefCOCO (UNC) referring expressions when given.

Layout (as downloaded)::

    ROOT/annotations/captions_train2014.json, captions_val2014.json
    ROOT/train2014/COCO_train2014_<12-digit id>.jpg, ROOT/val2014/COCO_val2014_<12-digit id>.jpg
    QA_ROOT/{train,test}/img_ids.txt, questions.txt, answers.txt        (COCO-QA, line-aligned; optional)
    REF_ROOT/refs(unc).p, REF_ROOT/instances.json                       (RefCOCO UNC; optional)

train2014 rows get split ``train``, val2014 rows ``val``. RefCOCO's ``refs(unc).p`` is a Python pickle in the
official release (the only published form); it is read with the plain-data unpickler of
:func:`lgvq_data.sources.common.load_data_pickle`, which never imports code. Each referred object's box
(from ``instances.json``) is added to ``boxes`` and each of its sentences to ``refs``.
"""

from __future__ import annotations

import json
import os
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from lgvq_data.build import Rejected, build_shards
from lgvq_data.sources.common import SourceLayoutError, as_text, image_row, load_data_pickle, require_file

SOURCE_NAME = "coco"
COCO_SPLITS = {"train2014": "train", "val2014": "val"}


def coco_file_name(folder: str, image_id: int) -> str:
    """``COCO_<folder>_<id zero-padded to 12 digits>.jpg``."""
    return f"COCO_{folder}_{image_id:012d}.jpg"


def _load_json(path: Path) -> Any:
    try:
        return json.loads(require_file(path, "annotation file").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise SourceLayoutError(f"{path}: not valid UTF-8 JSON ({err})") from None


def load_coco_qa(qa_root: Path) -> dict[int, list[dict[str, str]]]:
    """image id → [{question, answer}] from COCO-QA's line-aligned text files (train and test)."""
    out: dict[int, list[dict[str, str]]] = defaultdict(list)
    for part in ("train", "test"):
        folder = qa_root / part
        if not folder.is_dir():
            continue
        files = [
            require_file(folder / f"{name}.txt", f"COCO-QA {name}.txt")
            for name in ("img_ids", "questions", "answers")
        ]
        columns = [f.read_text(encoding="utf-8").splitlines() for f in files]
        if len({len(c) for c in columns}) != 1:
            raise SourceLayoutError(
                f"{folder}: img_ids/questions/answers have different line counts {[len(c) for c in columns]}"
            )
        for image_id, question, answer in zip(*columns, strict=False):
            out[int(image_id)].append({"question": question.strip(), "answer": answer.strip()})
    return out


def load_refcoco(ref_root: Path) -> dict[int, list[tuple[dict[str, Any], list[str]]]]:
    """image id → [(box dict, expressions)] from RefCOCO ``refs(unc).p`` + ``instances.json``."""
    refs = load_data_pickle(require_file(ref_root / "refs(unc).p", "RefCOCO refs(unc).p"))
    instances = _load_json(ref_root / "instances.json")
    categories = {c["id"]: c["name"] for c in instances.get("categories", [])}
    annotations = {a["id"]: a for a in instances["annotations"]}
    out: dict[int, list[tuple[dict[str, Any], list[str]]]] = defaultdict(list)
    for ref in refs:
        ann = annotations.get(ref["ann_id"])
        if ann is None:
            continue
        x, y, w, h = (float(v) for v in ann["bbox"])
        box = {
            "label": categories.get(ann["category_id"], str(ann["category_id"])),
            "x0": x,
            "y0": y,
            "x1": x + w,
            "y1": y + h,
        }
        sentences = [
            as_text(s["sent"]).strip() for s in ref.get("sentences", []) if as_text(s["sent"]).strip()
        ]
        out[int(ref["image_id"])].append((box, sentences))
    return out


def records(
    root: str | os.PathLike[str],
    qa_root: str | os.PathLike[str] | None = None,
    refcoco_root: str | os.PathLike[str] | None = None,
    folders: tuple[str, ...] = ("train2014", "val2014"),
    max_images: int | None = None,
) -> Iterator[dict[str, Any] | Rejected]:
    """Rows of MS-COCO 2014 (one row per image, all its captions)."""
    root = Path(root)
    qa = load_coco_qa(Path(qa_root)) if qa_root else {}
    grounding = load_refcoco(Path(refcoco_root)) if refcoco_root else {}
    emitted = 0
    for folder in folders:
        if folder not in COCO_SPLITS:
            raise ValueError(f"unknown COCO folder {folder!r}; known: {sorted(COCO_SPLITS)}")
        annotation_path = root / "annotations" / f"captions_{folder}.json"
        data = _load_json(annotation_path)
        captions: dict[int, list[str]] = defaultdict(list)
        for ann in data["annotations"]:
            captions[int(ann["image_id"])].append(str(ann["caption"]))
        for image in sorted(data["images"], key=lambda im: im["id"]):
            if max_images is not None and emitted >= max_images:
                return
            image_id = int(image["id"])
            file_name = image.get("file_name") or coco_file_name(folder, image_id)
            optional: dict[str, Any] = {}
            if image_id in qa:
                optional["qa"] = qa[image_id]
            if image_id in grounding:
                boxes, refs = [], []
                for box, sentences in grounding[image_id]:
                    refs.extend({"expression": s, "box_index": len(boxes)} for s in sentences)
                    boxes.append(box)
                optional.update(boxes=boxes, refs=refs, labels=sorted({b["label"] for b in boxes}))
            yield image_row(
                f"coco-{image_id}",
                COCO_SPLITS[folder],
                SOURCE_NAME,
                root / folder / file_name,
                captions.get(image_id, []),
                origin=f"{annotation_path} (image {image_id})",
                **optional,
            )
            emitted += 1


def build(
    out_dir: str | os.PathLike[str],
    root: str | os.PathLike[str],
    qa_root: str | os.PathLike[str] | None = None,
    refcoco_root: str | os.PathLike[str] | None = None,
    folders: tuple[str, ...] = ("train2014", "val2014"),
    max_images: int | None = None,
    rows_per_shard: int = 4096,
    on_error: str = "fail",
    progress: bool = False,
) -> Path:
    """Convert MS-COCO 2014 (+ COCO-QA, RefCOCO) into shards at ``out_dir``."""
    return build_shards(
        records(root, qa_root, refcoco_root, folders, max_images),
        out_dir,
        source=SOURCE_NAME,
        rows_per_shard=rows_per_shard,
        on_error=on_error,
        progress=progress,
        metadata={"root": str(root), "folders": list(folders)},
    )

"""Sample grids: each of the four figures renders a valid PNG of a plausible size from real synthetic scenes,
written atomically (no temporary file left); bad arguments are refused by name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from lgvq_data.sources import synthetic
from lgvq_data.sources.synthetic import CLASS_NAMES
from lgvq_data.transforms import decode_image
from lgvq_downstream.figures import (
    save_completion_grid,
    save_image_grid,
    save_semantic_grid,
    save_text_to_image_grid,
)

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def scenes() -> tuple[Tensor, Tensor, list[str]]:
    """6 synthetic scenes: uint8 images 6×3×32×32, masks 6×32×32, one caption each."""
    rows = list(synthetic.records(6, image_size=32, seed=5))
    images = torch.from_numpy(np.stack([np.asarray(decode_image(r["image"])) for r in rows])).permute(
        0, 3, 1, 2
    )
    masks = torch.from_numpy(np.stack([np.asarray(decode_image(r["mask"], mode="L")) for r in rows])).long()
    return images, masks, [r["captions"][0] for r in rows]


def _check_png(path: Path, min_width: int, min_height: int) -> None:
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        width, height = image.size
    assert min_width <= width <= 4000 and min_height <= height <= 4000, (width, height)
    assert path.stat().st_size > 5000
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_the_four_grids_render(scenes, tmp_path: Path) -> None:
    images, masks, captions = scenes
    floats = images.float() / 127.5 - 1.0  # what a tokenizer decodes to
    plain = save_image_grid(
        torch.cat([floats, floats.flip(-1)]),
        tmp_path / "plain.png",
        columns=6,
        row_titles=["samples", "flipped"],
    )
    _check_png(plain, 500, 200)
    text = save_text_to_image_grid(images, captions, tmp_path / "t2i.png", columns=3, title="text-to-image")
    _check_png(text, 400, 300)
    semantic = save_semantic_grid(
        floats, masks, tmp_path / "semantic.png", columns=3, class_names=CLASS_NAMES
    )
    _check_png(semantic, 600, 200)
    completed = images.clone()
    completed[:, :, 16:] = 0
    completion = save_completion_grid(completed, images, tmp_path / "completion.png", given=0.5, columns=3)
    _check_png(completion, 600, 200)


def test_bad_arguments_are_refused(scenes, tmp_path: Path) -> None:
    images, masks, captions = scenes
    with pytest.raises(ValueError, match="1 row titles for 2 rows"):
        save_image_grid(images, tmp_path / "a.png", columns=3, row_titles=["one"])
    with pytest.raises(ValueError, match="5 captions for 6 images"):
        save_text_to_image_grid(images, captions[:5], tmp_path / "b.png")
    with pytest.raises(ValueError, match="given must be inside the image"):
        save_completion_grid(images, images, tmp_path / "c.png", given=32)
    with pytest.raises(ValueError, match=r"B×3×H×W, got shape \(6, 32, 32\)"):
        save_image_grid(masks, tmp_path / "d.png")
    assert not list(tmp_path.iterdir())

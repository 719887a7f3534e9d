"""Stage ``data``: build the caption/image Arrow shards the rest of the pipeline reads.

``python -m pipelines.data --out data/shards`` with the ``data`` section of params.yaml. The offline default
is the
synthetic captioned-scenes source; a real dataset is converted with ``lgvq-data build <source>`` and pointed
at
with ``data.source: prebuilt`` + ``data.prebuilt_dir``.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pipelines import progress
from pipelines.params import ParamsError, StageParams
from pipelines.stage import parser, setup_logging

PARAMS = ("data",)
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DataParams:
    """Section ``data``: which images, how many, how large."""

    source: Literal["synthetic", "prebuilt"]
    num_images: int
    image_size: int
    seed: int
    rows_per_shard: int
    val_fraction: float
    test_fraction: float
    prebuilt_dir: str | None = None


def build(params: DataParams, out: Path) -> Path:
    """Write (or copy) the shards for ``params`` into ``out``."""
    if params.source == "synthetic":
        from lgvq_data.sources import synthetic

        return synthetic.build(
            out,
            n=params.num_images,
            image_size=params.image_size,
            seed=params.seed,
            rows_per_shard=params.rows_per_shard,
            val_fraction=params.val_fraction,
            test_fraction=params.test_fraction,
            progress=not progress.active(),  # the console draws no bar for this short stage
        )
    if not params.prebuilt_dir:
        raise ParamsError("data.prebuilt_dir: required when data.source is 'prebuilt'")
    src = Path(params.prebuilt_dir)
    if not (src / "manifest.json").is_file():
        raise ParamsError(
            f"data.prebuilt_dir: {src} has no manifest.json (build it with `lgvq-data build ...`)"
        )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(src, tmp)
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    return out


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True, help="output shard folder")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    params = StageParams(args.params, PARAMS).section("data", DataParams)
    out = build(params, args.out)
    logger.info("shards written to %s", out)
    progress.headline(shards_headline(out))
    return 0


def shards_headline(shards: Path) -> str:
    """``4000 images in 4 shards (train 3200, val 400, test 400)`` from the manifest."""
    import json

    manifest = json.loads((shards / "manifest.json").read_text())
    splits = ", ".join(f"{k} {v}" for k, v in manifest.get("splits", {}).items())
    count = len(manifest.get("shards", []))
    return f"{manifest.get('total_rows', '?')} images in {count} shards" + (f" ({splits})" if splits else "")


if __name__ == "__main__":
    raise SystemExit(main())

"""Stage ``codes@<run>``: the pipeline's shards encoded by a trained run's frozen tokenizer.

``python -m pipelines.downstream.codes --run models/vqgan-on-s0 --shards data/shards --out
data/codes/vqgan-on-s0``. Every row of every split is encoded (``lgvq_downstream.codes.encode_shards``: the
evaluation preprocessing, the tokenizer's h×w code indices, every annotation carried over, a manifest with the
tokenizer's config hash and weights sha256); the downstream task stages read the result. The headline is the
share of the codebook the train split uses.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from pipelines import progress
from pipelines.downstream.params import CodesParams
from pipelines.params import StageParams
from pipelines.stage import parser, setup_logging

PARAMS = ("downstream.codes",)
logger = logging.getLogger(__name__)


def code_usage(codes_dir: Path, split: str = "train") -> tuple[int, int]:
    """(distinct codes used by ``split``, codebook size) of a code-shard directory."""
    import numpy as np

    from lgvq_downstream.codes import CodeShardSet

    codes = CodeShardSet(codes_dir, split=split, columns=())
    seen = np.zeros(codes.codebook_size, dtype=bool)
    for position in range(len(codes)):
        seen[codes[position]["indices"].numpy().ravel()] = True
    return int(seen.sum()), codes.codebook_size


def main(argv: list[str] | None = None) -> int:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, required=True, help="trained run folder (models/<run>)")
    p.add_argument("--shards", type=Path, required=True, help="lgvq-data shard directory")
    p.add_argument("--out", type=Path, required=True, help="code-shard directory to write")
    args = p.parse_args(argv)
    setup_logging(args.log_level)
    params = StageParams(args.params, PARAMS).section("downstream.codes", CodesParams)
    from lgvq_downstream.codes import encode_shards

    if params.threads > 0:
        from pipelines.models import torch_threads

        torch_threads(params.threads)
    started = time.perf_counter()
    manifest = encode_shards(
        args.run,
        args.shards,
        args.out,
        batch_size=params.batch_size,
        device=params.device,
        progress=not progress.active(),
    )
    used, size = code_usage(args.out)
    seconds = time.perf_counter() - started
    logger.info(
        "%s: %d rows → %d×%d codes of %d in %.0f s; the train split uses %d codes",
        args.out,
        manifest.total_rows,
        *manifest.grid,
        size,
        seconds,
        used,
    )
    progress.headline(
        f"{manifest.total_rows} images → {manifest.grid[0]}×{manifest.grid[1]} codes; "
        f"train uses {used}/{size}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

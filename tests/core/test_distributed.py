"""Two CPU processes (gloo): codebooks, training steps and metrics stay identical across ranks."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp


def _worker(rank: int, world: int, init_file: str, out_dir: str) -> None:
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        import sys

        from lgvq_core.config import TrainConfig
        from lgvq_core.metrics.codebook import CodebookUsage
        from lgvq_core.quantizers.cvq import ClusteredVectorQuantizer
        from lgvq_core.quantizers.vq import VectorQuantizer
        from lgvq_core.training.loop import build_optimizers
        from lgvq_core.training.step import train_step

        sys.path.insert(0, os.path.dirname(__file__))
        from core_helpers import make_tokenizer

        results: dict[str, bool] = {}
        torch.manual_seed(0)  # identical initial weights on every rank
        quantizers = {
            "vq-ema-restart-kmeans": VectorQuantizer(
                16, 4, codebook_update="ema", kmeans_init=True, dead_code_threshold=0.5
            ),
            "vq-grad-restart": VectorQuantizer(16, 4, dead_code_threshold=0.5),
            "cvq-probrandom": ClusteredVectorQuantizer(16, 4, anchor="probrandom"),
            "cvq-random": ClusteredVectorQuantizer(16, 4, anchor="random"),
        }
        gen = torch.Generator().manual_seed(100 + rank)  # different data (and sizes) per rank
        for name, q in quantizers.items():
            q.train()
            for step in range(4):
                q(torch.randn(1 + rank, 4, 3, 3, generator=gen) * (step + 1))
            gathered = [torch.empty_like(q.codebook.data) for _ in range(world)]
            dist.all_gather(gathered, q.codebook.data.contiguous())
            results[name] = all(torch.equal(gathered[0], g) for g in gathered)

        torch.manual_seed(0)
        tok = make_tokenizer("vq-ema", None, dead_code_threshold=0.1)
        opt, _ = build_optimizers(tok, None, TrainConfig(lr=1e-3))
        images = torch.rand(2, 3, 16, 16, generator=gen) * 2 - 1
        for step in range(2):
            train_step(tok, [{"images": images}], step=step, optimizer=opt)
        flat = torch.cat([v.float().reshape(-1) for v in tok.state_dict().values()])
        gathered = [torch.empty_like(flat) for _ in range(world)]
        dist.all_gather(gathered, flat)
        results["train_step_state"] = torch.equal(gathered[0], gathered[1])

        usage = CodebookUsage(4)
        usage.update(torch.tensor([rank, rank]))
        stats = usage.compute()
        results["usage_all_ranks"] = stats["histogram"] == [2.0, 2.0, 0.0, 0.0] and stats["usage"] == 0.5
        with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as f:
            json.dump(results, f)
    finally:
        dist.destroy_process_group()


def test_two_gloo_ranks_keep_codebooks_bit_identical(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path)), nprocs=2, join=True)
    for rank in range(2):
        results = json.loads((tmp_path / f"rank{rank}.json").read_text())
        failed = [k for k, ok in results.items() if not ok]
        assert not failed, f"rank {rank}: not identical across ranks: {failed}"

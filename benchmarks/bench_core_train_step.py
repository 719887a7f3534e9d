"""Training-step throughput of a small VQ-GAN on CPU: images/s and FLOP rate as a fraction of the GEMM rate.

Config: 32×32 images, ch 32, ch_mult (1, 2, 2), 1 res block, attention at 8 px, K = 512, D = 64, batch 8,
PatchGAN
(2 layers, 32 channels) from step 0, no perceptual network (its cost depends on the injected net). One step =
the
generator forward + backward + the discriminator update from the same forward (``lgvq_core.training.step``).
FLOPs per step are counted with ``torch.utils.flop_counter.FlopCounterMode`` (convs, matmuls, attention).
Writes benchmarks/results/bench_core_train_step.{json,md}. Run: ``python
benchmarks/bench_core_train_step.py``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig, TrainConfig
from lgvq_core.models.builders import build_discriminator, vqgan
from lgvq_core.training.loop import build_optimizers
from lgvq_core.training.step import train_step

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--amp", choices=["none", "bf16"], default="none")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: torch default)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    encoder = EncoderConfig(
        resolution=32,
        ch=32,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(8,),
        z_channels=64,
        norm_groups=8,
    )
    loss = LossConfig(
        perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=2, disc_channels=32
    )
    tok = vqgan(encoder=encoder, quantizer=QuantizerConfig(codebook_size=512, embed_dim=64), loss=loss)
    disc = build_discriminator(tok.config)
    cfg = TrainConfig(lr=1e-4, disc_lr=1e-4, amp=args.amp)
    opt, disc_opt = build_optimizers(tok, disc, cfg)
    images = torch.rand(args.batch, 3, 32, 32) * 2 - 1
    batch = [{"images": images}]

    def step(i: int) -> None:
        train_step(
            tok, batch, step=i, optimizer=opt, discriminator=disc, disc_optimizer=disc_opt, amp=args.amp
        )

    step(0)  # warm-up
    with FlopCounterMode(display=False) as counter:
        step(1)
    flops_per_step = counter.get_total_flops()
    t = time.perf_counter()
    for i in range(args.steps):
        step(2 + i)
    seconds_per_step = (time.perf_counter() - t) / args.steps

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    torch.mm(a, b)
    times = []
    for _ in range(3):
        s = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - s)
    gemm_rate = 2.0 * 2048**3 / min(times)

    rate = flops_per_step / seconds_per_step
    result = {
        "config": {
            "image": 32,
            "batch": args.batch,
            "amp": args.amp,
            "params": sum(p.numel() for p in tok.parameters()),
        },
        "threads": torch.get_num_threads(),
        "seconds_per_step": seconds_per_step,
        "images_per_second": args.batch / seconds_per_step,
        "gflop_per_step": flops_per_step / 1e9,
        "achieved_gflops": rate / 1e9,
        "gemm_gflops": gemm_rate / 1e9,
        "fraction_of_gemm_rate": rate / gemm_rate,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_core_train_step.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# VQ-GAN training step, 32 px, batch {args.batch}, CPU "
        f"({torch.get_num_threads()} threads, amp {args.amp})",
        "",
        "| images/s | s/step | GFLOP/step | achieved GFLOP/s | fp32 GEMM GFLOP/s | fraction of GEMM rate |",
        "|---|---|---|---|---|---|",
        f"| {result['images_per_second']:.1f} | {seconds_per_step:.3f} | {result['gflop_per_step']:.2f} | "
        f"{result['achieved_gflops']:.1f} | {result['gemm_gflops']:.1f} | "
        f"{result['fraction_of_gemm_rate']:.2f} |",
    ]
    (RESULTS / "bench_core_train_step.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

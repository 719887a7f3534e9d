"""Sampling throughput of ``lgvq_downstream.generation.CodeGenerator``: codes/s of autoregressive sampling
with and without the KV cache, and of MaskGIT decoding, at the default pipeline size.

Size: grid 16×16 (256 codes per image), K = 256, width 128, 4 layers, 4 heads, MLP ratio 4, batch 16,
unconditional, randomly initialised (the cost does not depend on the weights); temperature 1, no top-k/top-p.
MaskGIT runs ``maskgit_steps`` = 8 decoding steps (``--maskgit-steps``). Variants:

    AR, KV cache    raster order, one new code per forward, earlier keys/values from the cache
    AR, no cache    raster order, the whole sequence re-run for every code (256 forwards of growing length)
    MaskGIT         8 forwards of the full 256-code sequence

Each variant samples the same batch size from the same seed once per round; the variants are interleaved
round by round (the order rotated each round), so load from other processes falls on all of them alike; one
untimed warm-up sample (n = 1) of each first. Per variant: wall seconds per batch (median and IQR over the
rounds), CPU seconds (``time.process_time``: this process, all threads; with ``OMP_WAIT_POLICY=PASSIVE``),
codes/s = batch·256 / wall median, and the speed-up over "AR, no cache" (median over rounds of the
same-round ratio). The cached and uncached AR samples of a round must be identical (checked; same seed).

Writes benchmarks/results/sampling.{json,md}. Run (≈ 1 min on one core):
``nice -n 19 python benchmarks/bench_sampling.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
from bench_lg_overhead import cpu_model, quartiles  # noqa: E402

from lgvq_downstream.generation import CodeGenerator, GeneratorConfig  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "sampling"


def build(sampler: str, args: argparse.Namespace) -> CodeGenerator:
    torch.manual_seed(0)
    config = GeneratorConfig(
        sampler=sampler,
        codebook_size=args.codebook_size,
        grid=(args.grid, args.grid),
        width=args.width,
        layers=args.layers,
        heads=args.heads,
        maskgit_steps=args.maskgit_steps,
    )
    return CodeGenerator(config).eval()


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--grid", type=int, default=16)
    parser.add_argument("--codebook-size", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--maskgit-steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch intra-op threads (0: torch default; 1 on shared cores)"
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    load_start = os.getloadavg()[0]

    ar, maskgit = build("autoregressive", args), build("maskgit", args)
    variants: dict[str, Callable[[int, int], torch.Tensor]] = {
        "AR, KV cache": lambda n, seed: ar.sample(n, seed=seed, use_cache=True),
        "AR, no cache": lambda n, seed: ar.sample(n, seed=seed, use_cache=False),
        "MaskGIT": lambda n, seed: maskgit.sample(n, seed=seed),
    }
    names = list(variants)
    for name in names:  # warm-up
        variants[name](1, 0)

    wall: dict[str, list[float]] = {name: [] for name in names}
    cpu: dict[str, list[float]] = {name: [] for name in names}
    identical = []
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        samples = {}
        for name in order:
            c0, t0 = time.process_time(), time.perf_counter()
            samples[name] = variants[name](args.batch, r)
            wall[name].append(time.perf_counter() - t0)
            cpu[name].append(time.process_time() - c0)
        identical.append(bool(torch.equal(samples["AR, KV cache"], samples["AR, no cache"])))
        print(
            f"{time.perf_counter() - started:6.1f}s round {r + 1}/{args.rounds}: "
            + ", ".join(f"{n} {wall[n][-1]:.2f}s" for n in order),
            flush=True,
        )
    if not all(identical):
        raise SystemExit("cached and uncached autoregressive samples differ")

    codes_per_batch = args.batch * args.grid * args.grid
    rows = {}
    for name in names:
        q1, median, q3 = quartiles(wall[name])
        c1, cpu_median, c3 = quartiles(cpu[name])
        speedup = statistics.median(
            base / t for base, t in zip(wall["AR, no cache"], wall[name], strict=True)
        )
        rows[name] = {
            "wall_seconds": {"median": median, "iqr": q3 - q1, "rounds": wall[name]},
            "cpu_seconds": {"median": cpu_median, "iqr": c3 - c1, "rounds": cpu[name]},
            "codes_per_second": codes_per_batch / median,
            "images_per_second": args.batch / median,
            "speedup_vs_ar_no_cache": speedup,
        }
    result = {
        "config": {
            "grid": [args.grid, args.grid],
            "codebook_size": args.codebook_size,
            "width": args.width,
            "layers": args.layers,
            "heads": args.heads,
            "batch": args.batch,
            "maskgit_steps": args.maskgit_steps,
            "rounds": args.rounds,
            "conditions": [],
            "temperature": 1.0,
        },
        "machine": {
            "cpu": cpu_model(),
            "cpus": os.cpu_count(),
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_average_start": load_start,
            "load_average_end": os.getloadavg()[0],
            "nice": os.nice(0),
        },
        "ar_cached_equals_uncached": all(identical),
        "variants": rows,
        "seconds_total": time.perf_counter() - started,
        "command": "nice -n 19 python benchmarks/bench_sampling.py "
        + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{NAME}.json").write_text(json.dumps(result, indent=2) + "\n")
    text = markdown(result)
    (args.out / f"{NAME}.md").write_text(text)
    print(text)
    return result


def markdown(result: dict) -> str:
    c, m = result["config"], result["machine"]
    lines = [
        f"# Sampling throughput, grid {c['grid'][0]}×{c['grid'][1]}, K={c['codebook_size']}, "
        f"width {c['width']}, {c['layers']} layers, batch {c['batch']}",
        "",
        "`lgvq_downstream.generation.CodeGenerator.sample`, unconditional, temperature 1; MaskGIT with "
        f"{c['maskgit_steps']} steps. The variants were interleaved round by round ({c['rounds']} rounds, "
        "rotated order) in one run; wall and CPU seconds per batch are medians (IQR) over the rounds; "
        "codes/s from the wall median; speed-up = median over rounds of the same-round ratio to "
        '"AR, no cache". Cached and uncached AR samples identical (same seed): '
        f"{'yes' if result['ar_cached_equals_uncached'] else 'NO'}.",
        "",
        f"Machine: {m['cpu']}, {m['cpus']} CPUs shared with other work, torch {m['torch']} with "
        f"{m['threads']} thread(s), nice {m['nice']}; 1-min load average {m['load_average_start']:.1f} at "
        f"the start, {m['load_average_end']:.1f} at the end. Whole benchmark: "
        f"{result['seconds_total']:.0f} s wall.",
        "",
        f"Command: `{result['command'].strip()}`",
        "",
        "| variant | wall s/batch, median (IQR) | CPU s/batch, median (IQR) | codes/s | images/s "
        "| speed-up vs AR, no cache |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in result["variants"].items():
        w, p = row["wall_seconds"], row["cpu_seconds"]
        lines.append(
            f"| {name} | {w['median']:.2f} ({w['iqr']:.2f}) | {p['median']:.2f} ({p['iqr']:.2f}) "
            f"| {row['codes_per_second']:,.0f} | {row['images_per_second']:.1f} "
            f"| {row['speedup_vs_ar_no_cache']:.1f}× |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

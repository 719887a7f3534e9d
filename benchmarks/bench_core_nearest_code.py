"""Nearest-code search speed: lgvq_core's chunked fp32 search vs vector-quantize-pytorch and a taming-style
search.

K = 16384 codes, D = 256, N = 16384 vectors, fp32, CPU. Reports, measured in the same run:
- the machine's fp32 GEMM rate on the same (N×D)·(D×K) product (``torch.mm``),
- each method's time and its FLOP rate (2·N·K·D per search) as a fraction of that GEMM rate,
- speed-up of ours vs ``vector_quantize_pytorch.VectorQuantize`` (eval forward, same codebook) and vs taming's
  ``VectorQuantizer2`` search (full N×K distance matrix, then argmin),
- agreement of the indices.
Writes benchmarks/results/bench_core_nearest_code.{json,md}. Run: ``python
benchmarks/bench_core_nearest_code.py``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import torch

from lgvq_core.quantizers.search import nearest_code

RESULTS = Path(__file__).resolve().parent / "results"


def best_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def taming_search(z: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """As in taming ``VectorQuantizer2.forward``: d = ‖z‖² + ‖e‖² − 2 z·eᵀ (full N×K), argmin."""
    d = (
        torch.sum(z**2, dim=1, keepdim=True)
        + torch.sum(codebook**2, dim=1)
        - 2 * torch.einsum("bd,dn->bn", z, codebook.t())
    )
    return torch.argmin(d, dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--codes", type=int, default=16384)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--vectors", type=int, default=16384)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--chunk-sizes", type=int, nargs="+", default=[256, 1024, 4096])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (0: torch default; 1 avoids oversubscription on shared cores)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    k, d, n = args.codes, args.dim, args.vectors
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, d, generator=g)
    codebook = torch.randn(k, d, generator=g)
    flops = 2.0 * n * k * d

    # The machine's fp32 GEMM rate: the best of a square 2048³ product and the same product done in row blocks
    # (a single N×K output of 1 GiB is memory-bound and would understate the rate).
    a, b = torch.randn(2048, 2048, generator=g), torch.randn(2048, 2048, generator=g)
    square_rate = 2.0 * 2048**3 / best_time(lambda: torch.mm(a, b), args.repeats)
    out_block = torch.empty(1024, k)

    def blocked_gemm():
        for start in range(0, n, 1024):
            torch.mm(z[start : start + 1024], codebook.t(), out=out_block)

    blocked_rate = flops / best_time(blocked_gemm, args.repeats)
    gemm_rate = max(square_rate, blocked_rate)
    gemm_time = flops / gemm_rate  # time the search's FLOPs would take at the GEMM rate

    ours = {}
    for chunk in args.chunk_sizes:
        ours[chunk] = best_time(lambda c=chunk: nearest_code(z, codebook, c), args.repeats)
    best_chunk = min(ours, key=ours.get)
    ours_time = ours[best_chunk]
    ours_idx = nearest_code(z, codebook, best_chunk)

    taming_time = best_time(lambda: taming_search(z, codebook), args.repeats)
    taming_idx = taming_search(z, codebook)

    vqp_time = None
    vqp_agree = None
    try:
        from vector_quantize_pytorch import VectorQuantize

        vq = VectorQuantize(dim=d, codebook_size=k, decay=0.99, kmeans_init=False).eval()
        with torch.no_grad():
            vq._codebook.embed.copy_(codebook.unsqueeze(0))

        def run_vqp():
            with torch.no_grad():
                return vq(z.unsqueeze(0))

        vqp_time = best_time(run_vqp, args.repeats)
        vqp_agree = float((run_vqp()[1].reshape(-1) == ours_idx).float().mean())
    except ImportError:
        pass

    result = {
        "config": {"codes": k, "dim": d, "vectors": n, "dtype": "float32", "device": "cpu"},
        "machine": {
            "torch": torch.__version__,
            "threads": torch.get_num_threads(),
            "cpu": platform.processor(),
        },
        "gemm": {
            "gflops": gemm_rate / 1e9,
            "square_2048_gflops": square_rate / 1e9,
            "blocked_same_shape_gflops": blocked_rate / 1e9,
            "seconds_for_search_flops": gemm_time,
        },
        "ours": {
            "seconds": ours_time,
            "best_chunk": best_chunk,
            "seconds_by_chunk": {str(c): t for c, t in ours.items()},
            "fraction_of_gemm_rate": gemm_time / ours_time,
        },
        "taming_style": {
            "seconds": taming_time,
            "fraction_of_gemm_rate": gemm_time / taming_time,
            "index_agreement": float((taming_idx == ours_idx).float().mean()),
        },
        "vector_quantize_pytorch": None
        if vqp_time is None
        else {
            "seconds": vqp_time,
            "fraction_of_gemm_rate": gemm_time / vqp_time,
            "index_agreement": vqp_agree,
        },
        "speedup_vs_taming": taming_time / ours_time,
        "speedup_vs_vector_quantize_pytorch": None if vqp_time is None else vqp_time / ours_time,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench_core_nearest_code.json").write_text(json.dumps(result, indent=2))
    rows = [
        ("GEMM rate × search FLOPs (reference)", gemm_time, 1.0, "—", "—"),
        (f"lgvq_core nearest_code (chunk {best_chunk})", ours_time, gemm_time / ours_time, "1.00", "1.00×"),
        (
            "taming VectorQuantizer2 search",
            taming_time,
            gemm_time / taming_time,
            f"{result['taming_style']['index_agreement']:.4f}",
            f"{taming_time / ours_time:.2f}×",
        ),
    ]
    if vqp_time is not None:
        rows.append(
            (
                "vector_quantize_pytorch.VectorQuantize (eval)",
                vqp_time,
                gemm_time / vqp_time,
                f"{vqp_agree:.4f}",
                f"{vqp_time / ours_time:.2f}×",
            )
        )
    lines = [
        f"# Nearest-code search, K={k}, D={d}, N={n}, fp32 CPU "
        f"({torch.get_num_threads()} threads, torch {torch.__version__})",
        "",
        f"fp32 GEMM rate measured in the same run: {gemm_rate / 1e9:.1f} GFLOP/s "
        f"(square 2048³: {square_rate / 1e9:.1f}; same product in 1024-row blocks: {blocked_rate / 1e9:.1f})",
        "",
        "| method | seconds | fraction of GEMM rate | index agreement with ours | ours is faster by |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {t:.3f} | {frac:.2f} | {agree} | {speed} |" for name, t, frac, agree, speed in rows
    ]
    (RESULTS / "bench_core_nearest_code.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()

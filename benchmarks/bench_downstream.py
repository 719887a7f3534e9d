"""Second-stage training speed of the downstream tasks as a fraction of this machine's fp32 GEMM rate, and
what a captioning evaluation costs (METEOR's Java start-up included).

For each task of ``--tasks`` (default caption, vqa, ground) at the size ``params.yaml`` gives it
(``downstream.<task>.config``): the fresh model and the train split of ``--codes`` (as the pipeline stage
builds them, ``pipelines.downstream.tasks.prepare``), then ``--steps`` timed training steps (forward +
backward + AdamW, after ``--warmup`` untimed ones) on batches of the config's ``train.batch_size``. The FLOPs
of one step's forward + backward are counted by ``torch.utils.flop_counter.FlopCounterMode`` (matmuls,
convolutions, attention); achieved GFLOP/s = FLOPs / median step time. The reference is the same process's
fp32 GEMM rate (``torch.mm`` of two 1024×1024 matrices, median of 20) at the same thread count, so the
fraction is a ratio measured in one run. Captioning evaluation: ``lgvq_downstream.tasks.captioning.evaluate``
of the pipeline's trained ``models/downstream/caption-<run>`` on the test split (greedy decoding, the
most-frequent-caption baseline, the shuffled-codes control, BLEU/METEOR/ROUGE-L/CIDEr-D), wall seconds, and
the same with METEOR left out (the difference is the JVM's share).

Writes benchmarks/results/bench_downstream.{json,md}. Run after ``make pipeline`` (it reads the committed
code shards and caption model; ≈ 3 min on one thread):
``python benchmarks/bench_downstream.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402
import yaml  # noqa: E402
from bench_lg_overhead import cpu_model, quartiles  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from pipelines.downstream.params import task_config  # noqa: E402
from pipelines.downstream.tasks import ModuleView, prepare  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
NAME = "bench_downstream"


def gemm_gflops(size: int = 1024, repeats: int = 20) -> float:
    """Median fp32 ``torch.mm`` rate of two size×size matrices, GFLOP/s (2·n³ per product)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2 * size**3 / statistics.median(times) / 1e9


def train_speed(task: str, params: dict, codes: Path, run: Path, steps: int, warmup: int) -> dict:
    """Median step time, FLOPs per step and parameter count of one task's second-stage training."""
    config = task_config(task, params["downstream"][task]["config"])
    prepared = prepare(task, config, codes, run)
    model = prepared.model.train()
    view = ModuleView(model)
    optimizer = torch.optim.AdamW(model.parameters(), lr=config.train.lr)
    loader = DataLoader(
        prepared.dataset,
        batch_size=config.train.batch_size,
        shuffle=True,
        collate_fn=prepared.collate,
        generator=torch.Generator().manual_seed(0),
    )
    batches = iter(loader)

    def step() -> None:
        nonlocal batches
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            batch = next(batches)
        loss = prepared.step_fn(view, batch)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    for _ in range(warmup):
        step()
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return {
        "task": task,
        "batch_size": config.train.batch_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "step_s_median": statistics.median(times),
        "step_s_iqr": (lambda q: q[2] - q[0])(quartiles(times)),
        "flops_per_step": int(counter.get_total_flops()),
        "examples": len(prepared.dataset),
    }


def caption_eval_seconds(codes: Path, model_dir: Path, batch_size: int) -> dict:
    """Wall seconds of one test-split captioning evaluation, with and without METEOR."""
    from lgvq_downstream.codes import CodeShardSet
    from lgvq_downstream.tasks.captioning import Captioner, evaluate

    model = Captioner.from_pretrained(model_dir)
    dataset = CodeShardSet(codes, split="test")
    out = {}
    for label, metrics in (("all metrics", None), ("without METEOR", ("bleu", "rouge", "cider"))):
        start = time.perf_counter()
        report = evaluate(model, dataset, beam_size=1, metrics=metrics, batch_size=batch_size)
        out[label] = {"seconds": time.perf_counter() - start, "images": report["num_images"]}
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--params", type=Path, default=REPO / "params.yaml")
    p.add_argument("--run", default="vqgan-on-s0", help="tokenizer run whose codes are used")
    p.add_argument("--tasks", nargs="+", default=["caption", "vqa", "ground"])
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=1, help="torch threads (the stages use 1)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    params = yaml.safe_load(args.params.read_text())
    codes, run = REPO / "data" / "codes" / args.run, REPO / "models" / args.run
    gemm = gemm_gflops()
    rows = []
    for task in args.tasks:
        row = train_speed(task, params, codes, run, args.steps, args.warmup)
        row["gflops"] = row["flops_per_step"] / row["step_s_median"] / 1e9
        row["fraction_of_gemm"] = row["gflops"] / gemm
        rows.append(row)
    evaluation = caption_eval_seconds(
        codes,
        REPO / "models" / "downstream" / f"caption-{args.run}",
        params["downstream"]["caption"]["eval_batch_size"],
    )
    result = {
        "machine": {
            "cpu": cpu_model(),
            "threads": args.threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
        "gemm_gflops": gemm,
        "train": rows,
        "caption_evaluation": evaluation,
        "command": "python benchmarks/bench_downstream.py " + " ".join(argv or sys.argv[1:]),
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{NAME}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{NAME}.md").write_text(markdown(result))
    return result


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        f"# {NAME}",
        "",
        __doc__.split("\n\n")[1].replace("\n", " "),
        "",
        f"Machine: {m['cpu']}, torch {m['torch']} with {m['threads']} thread(s). fp32 GEMM (1024³, median of "
        f"20): **{result['gemm_gflops']:.1f} GFLOP/s**. Command: `{result['command'].strip()}`.",
        "",
        "| task | batch | parameters | step s, median (IQR) | GFLOP per step | achieved GFLOP/s "
        "| **fraction of GEMM** |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in result["train"]:
        lines.append(
            f"| {r['task']} | {r['batch_size']} | {r['parameters']:,} | {r['step_s_median']:.3f} "
            f"({r['step_s_iqr']:.3f}) | {r['flops_per_step'] / 1e9:.2f} | {r['gflops']:.1f} | "
            f"**{100 * r['fraction_of_gemm']:.0f} %** |"
        )
    lines += [
        "",
        "Captioning evaluation on the test split (greedy, baseline and shuffled-codes control included):",
        "",
    ]
    lines += ["| metrics | images | wall s |", "|---|---|---|"]
    for label, e in result["caption_evaluation"].items():
        lines.append(f"| {label} | {e['images']} | {e['seconds']:.1f} |")
    ev = result["caption_evaluation"]
    jvm = ev["all metrics"]["seconds"] - ev["without METEOR"]["seconds"]
    lines += ["", f"METEOR (its JVM start-up and scoring, three caption sets) adds {jvm:.1f} s."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()

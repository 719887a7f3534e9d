"""The report stage renders the downstream section from small per-stage JSON files: the overview and one table
per task (models, the strongest trivial baseline, the shuffled-codes control, the paper's rows), one-seed
cells without an interval and several seeds with one, the example links, and the numbers in summary.json."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from pipelines import report
from pipelines.statistics import mean_interval

PNG = b"\x89PNG\r\n\x1a\n" + b"\0" * 16


def _caption(cider: float) -> dict[str, Any]:
    metrics = {"BLEU-4": 0.2, "METEOR": 0.21, "ROUGE-L": 0.5, "CIDEr-D": cider, "distinct_caption_ratio": 0.5}
    return {
        "metrics": metrics,
        "baseline": {"metrics": {**metrics, "CIDEr-D": 0.30, "distinct_caption_ratio": 0.0025}},
        "shuffled_codes": {"metrics": {**metrics, "CIDEr-D": 0.25}},
    }


def _vqa(accuracy: float) -> dict[str, Any]:
    def scores(acc: float, colour: float) -> dict[str, Any]:
        per_type = {"color": {"accuracy": colour}, "yes/no": {"accuracy": 0.6 + acc / 10}}
        return {"accuracy": acc, "per_type": per_type, "WUPS@0.9": acc + 0.01, "WUPS@0.0": 0.9}

    return {
        "metrics": scores(accuracy, 0.4),
        "baseline": {"metrics": scores(0.37, 0.1)},
        "shuffled_codes": {"metrics": scores(0.36, 0.1)},
    }


def _ground(acc: float) -> dict[str, Any]:
    return {
        "model": {"accuracy@0.5": acc, "mean_iou": 0.4},
        "baselines": {
            "mean_train_box": {"accuracy@0.5": 0.05, "mean_iou": 0.2},
            "centre_box": {"accuracy@0.5": 0.08, "mean_iou": 0.21},  # the stronger of the two
            "shuffled_codes": {"accuracy@0.5": 0.07, "mean_iou": 0.2},
        },
    }


def _retrieve(r1: float, heads: str) -> dict[str, Any]:
    chance = {"recall@1": 0.01, "recall@5": 0.05, "recall@10": 0.1, "median_rank": 50}
    return {
        "heads": heads,
        "recall@1": r1,
        "recall@5": 0.3,
        "recall@10": 0.5,
        "median_rank": 9.0,
        "chance": chance,
    }


def _write(folder: Path, task: str, run: str, data: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    figure = folder / f"{task}-{run}.png"
    figure.write_bytes(PNG)
    train = {"steps": 10, "examples": 100, "world_size": 1, "train_seconds": 3.0}
    pipeline = {"figure": str(figure), "train": train, "eval_seconds": 2.0, "stage_seconds": 9.0}
    (folder / f"{task}-{run}.json").write_text(json.dumps({**data, "pipeline": pipeline}))


def _render(tmp: Path, runs: list[str], seeds: list[int]) -> tuple[str, dict[str, Any]]:
    params = tmp / "params.yaml"
    tasks = {task: runs for task in ("caption", "vqa", "ground", "retrieve")}
    params.write_text(
        yaml.safe_dump({"runs": {"bases": ["vqgan"], "seeds": seeds}, "downstream": {"tasks": tasks}})
    )
    out = tmp / "reports"
    argv = ["--params", str(params), "--eval", str(tmp / "eval"), "--train", str(tmp / "train")]
    assert report.main([*argv, "--downstream", str(out / "downstream"), "--out", str(out)]) == 0
    return (out / "report.md").read_text(), json.loads((out / "summary.json").read_text())


def test_one_seed_per_model_renders_values_without_intervals(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "downstream"
    for run, lg in (("vqgan-off-s0", False), ("vqgan-on-s0", True)):
        _write(folder, "caption", run, _caption(0.60 if lg else 0.40))
        _write(folder, "vqa", run, _vqa(0.45 if lg else 0.41))
        _write(folder, "ground", run, _ground(0.12 if lg else 0.10))
        _write(folder, "retrieve", run, _retrieve(0.20 if lg else 0.05, "lg" if lg else "probe"))
    (folder / "vqa-vqgan-on-s0.json").unlink()  # a stage that has not run yet
    text, summary = _render(tmp_path, ["vqgan-off-s0", "vqgan-on-s0"], [0])

    assert "## Downstream tasks on the frozen tokenizers' codes" in text
    assert "7 of 8 task stages found" in text and "**without an interval**" in text
    # Overview: CIDEr-D ×100, VQA accuracy %, Acc@0.5 %, R@1 %; the strongest baseline (centre box: 8.0).
    assert "| VQ-GAN | 40.00 | 41.0 | 10.0 | 5.0 |" in text
    assert "| VQ-GAN+LG | 60.00 | — | 12.0 | 20.0 |" in text
    assert "| trivial baseline (the strongest) | 30.00 | 37.0 | 8.0 | 1.0 |" in text
    assert "| shuffled codes, VQ-GAN+LG | 25.00 | — | 7.0 | — |" in text
    # Task tables: per-type VQA columns, both grounding baselines, the paper's rows beside ours.
    assert "| row | seeds | accuracy % ↑ | color % | yes/no % | WUPS@0.9 % ↑ | WUPS@0.0 % ↑ |" in text
    assert "| VQ-GAN | 0 | 41.0 | 40.0 | 64.1 | 42.0 | 90.0 |" in text  # keys with "/" and "." are read
    assert "| trivial baseline: centre box of mean size | — | 8.0 | 0.210 |" in text
    assert "| *VQ-GAN (paper)* |  | 1.29 | 24.47 | 33.40 | 93.62 |  |" in text
    assert "| *LG-VQ (VQ-GAN+LG) (paper)* |  | 40.97 |" in text and "9.62" in text
    assert "| VQ-GAN+LG (own LG heads) | 0 | 20.0 | 30.0 | 50.0 | 9.0 |" in text
    assert (
        "| VQ-GAN (probe heads) | 0 |" in text and "| chance: a uniformly random ranking | — | 1.0 |" in text
    )
    assert "- VQ-GAN+LG: CIDEr-D 60.00 vs most frequent training caption 30.00 (above it)" in text
    assert "- VQ-GAN: Acc@0.5 10.0 % vs centre box of mean size 8.0 % (above it), shuffled codes 7.0" in text
    assert "shuffled codes 25.00 (the image adds +35.00)" in text
    assert "- VQ-GAN+LG vs VQ-GAN, CIDEr-D: +20.00 over 1 seed — a single seed, no interval" in text
    # Retrieval's rows use different heads (own LG vs probe): the delta says what it measures.
    assert "- VQ-GAN+LG vs VQ-GAN, R@1: +15.0 points over 1 seed" in text
    assert "so this delta measures LG's joint training of the heads, not the codes" in text
    assert "[VQ-GAN+LG seed 0](downstream/caption-vqgan-on-s0.png)" in text
    assert "| caption@vqgan-on-s0 | 10 | 100 | 1 | 3 | 2 | 9 |" in text
    tasks = summary["downstream"]["tasks"]
    assert tasks["caption"]["vqgan-on"]["CIDEr-D"] == 0.60 and tasks["vqa"]["vqgan-off"]["accuracy"] == 0.41
    assert "vqgan-on" not in tasks["vqa"] and summary["downstream"]["stages_found"] == 7


def test_several_seeds_show_mean_and_interval(tmp_path: Path) -> None:
    folder = tmp_path / "reports" / "downstream"
    ciders = {0: 0.50, 1: 0.56, 2: 0.59}
    runs = []
    for seed, cider in ciders.items():
        for lg in ("off", "on"):
            run = f"vqgan-{lg}-s{seed}"
            runs.append(run)
            _write(folder, "caption", run, _caption(cider if lg == "on" else 0.4))
    text, _ = _render(tmp_path, runs, [0, 1, 2])
    interval = mean_interval([100 * v for v in ciders.values()])
    assert f"| VQ-GAN+LG | {interval.mean:.2f} ± {interval.half_width:.2f} |" in text
    assert "| VQ-GAN+LG | 0, 1, 2 |" in text and "without an interval" not in text
    assert "mean ± 95 % Student-t half-width" in text
    # Paired by tokenizer seed: deltas 10, 16, 19 points of CIDEr-D; mean 15, sd √21, t(2) = 4.303.
    half = 4.303 * (21**0.5) / 3**0.5
    assert (
        f"- VQ-GAN+LG vs VQ-GAN, CIDEr-D: +15.00 [+{15 - half:.2f}, +{15 + half:.2f}] over 3 seeds — LG is "
        "better (interval excludes zero)." in text
    )
    assert f"(above it: the 3-seed interval's low end is {interval.low:.2f})" in text


def test_a_params_file_without_downstream_gets_no_section(tmp_path: Path) -> None:
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"runs": {"bases": ["vqgan"], "seeds": [0]}}))
    argv = ["--params", str(params), "--eval", str(tmp_path / "e"), "--train", str(tmp_path / "t")]
    assert report.main([*argv, "--out", str(tmp_path / "out")]) == 0
    assert "Downstream" not in (tmp_path / "out" / "report.md").read_text()


def _generate_report(
    fd: float, miou: tuple[float, float, float], shuffled: tuple[float, float, float]
) -> dict:
    def consistency(mean_low_high: tuple[float, float, float]) -> dict:
        m, lo, hi = mean_low_high
        return {"miou": m, "miou_interval": [lo, hi]}

    return {
        "protocol": {"sampler": "maskgit", "num_samples": 8, "sampling": {"guidance_scale": 2.0}},
        "reference": {"fd": {"reconstructions": 10.0, "unigram_baseline": 90.0}},
        "nll": {"null_condition": 3.0, "unigram_entropy": 4.4},
        "tasks": {
            "unconditional": {"fd": {"samples": fd}},
            "semantic": {
                "fd": {"samples": fd + 1},
                "consistency": {
                    "samples": consistency(miou),
                    "shuffled_masks": consistency(shuffled),
                    "real_images": consistency((0.9, 0.88, 0.92)),
                    "reconstructions": consistency((0.5, 0.45, 0.55)),
                    "unigram_baseline": consistency((0.1, 0.08, 0.12)),
                },
            },
        },
        "pipeline": {"figures": {}},
    }


def test_generation_section_sets_samples_beside_references_and_says_what_is_distinguishable(
    tmp_path: Path,
) -> None:
    from pipelines.downstream import report_generation

    folder = tmp_path / "downstream"
    folder.mkdir()
    (folder / "generate-vqgan-off-s0.json").write_text(
        json.dumps(_generate_report(50.0, (0.3, 0.25, 0.35), (0.2, 0.15, 0.24)))
    )
    (folder / "generate-vqgan-on-s0.json").write_text(
        json.dumps(_generate_report(40.0, (0.22, 0.18, 0.26), (0.2, 0.15, 0.24)))
    )
    lines, summary = report_generation.section(folder, ["vqgan-off-s0", "vqgan-on-s0"], tmp_path)
    text = "\n".join(lines)
    assert "2 of 2 generate stages found" in text
    assert "| **VQ-GAN** samples | 0 | 50.0 | 51.0 | 30.0 | 3.000 |" in text
    assert "| **VQ-GAN+LG** samples | 0 | 40.0 | 41.0 | 22.0 | 3.000 |" in text
    assert "| VQ-GAN unigram baseline (codes drawn i.i.d.) | 0 | 90.0 | 90.0 | 10.0 | 4.400 |" in text
    assert "| real test images | — | — | — | 90.0 | — |" in text
    assert "| *LG-VQ (VQ-GAN+LG) (paper, CelebA-HQ FID)* |  | 9.10 | 11.46 |  |  |" in text
    # intervals apart → followed; overlapping → not distinguishable
    assert "VQ-GAN, semantic synthesis: FD 51.0" in text and "the condition is followed" in text
    assert (
        "VQ-GAN+LG, semantic synthesis" in text and "NOT distinguishable from ignoring the condition" in text
    )
    assert summary["runs"]["vqgan-on-s0"]["semantic"] == {"fd": 41.0, "miou": 0.22}

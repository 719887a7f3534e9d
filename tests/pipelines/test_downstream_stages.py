"""The downstream stages through their ``main([...])`` on a tiny pipeline layout (tiny shards, two saved runs,
a params file with budgets of a few steps): ``codes@<run>`` writes code shards of the run's tokenizer, and the
task stages train under real Ray Train, evaluate on the test split only and write checkpoint, report and
figure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from downstream_helpers import layout

from pipelines.downstream import caption, codes, generate, judges, retrieve

pytestmark = pytest.mark.ray
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    import torch

    torch.set_num_threads(1)
    return layout(tmp_path_factory.mktemp("downstream"))


@pytest.fixture(scope="module")
def code_dirs(world: dict[str, Path]) -> dict[str, Path]:
    out = {}
    for run in ("vqgan-off-s0", "vqgan-on-s0"):
        target = world["root"] / "data" / "codes" / run
        argv = ["--params", str(world["params"]), "--run", str(world["models"] / run)]
        assert codes.main([*argv, "--shards", str(world["shards"]), "--out", str(target)]) == 0
        out[run] = target
    return out


def _stage_argv(world: dict[str, Path], code_dirs: dict[str, Path], task: str, run: str) -> list[str]:
    root = world["root"]
    return [
        "--params", str(world["params"]), "--run", str(world["models"] / run), "--codes", str(code_dirs[run]),
        "--out", str(root / "models" / "downstream" / f"{task}-{run}"),
        "--metrics", str(root / "reports" / f"{task}-{run}.json"),
        "--figure", str(root / "reports" / f"{task}-{run}.png"),
        "--log-level", "WARNING",
    ]  # fmt: skip


def test_codes_stage_encodes_every_row_with_the_runs_tokenizer(
    world: dict[str, Path], code_dirs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from lgvq_data.dataset import ShardDataset, collate
    from lgvq_downstream.codes import CodeShardSet, load_code_manifest
    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer

    manifest = load_code_manifest(code_dirs["vqgan-off-s0"])
    assert manifest.total_rows == 48 and manifest.splits == {"train": 24, "val": 12, "test": 12}
    assert manifest.grid == (8, 8) and manifest.codebook_size == 32
    # The codes are the run's own tokenizer's: re-encode the first test image here and compare.
    tokenizer = load_tokenizer(world["models"] / "vqgan-off-s0").model
    test_codes = CodeShardSet(code_dirs["vqgan-off-s0"], split="test")
    images = ShardDataset(world["shards"], "test", image_size=16, annotations=False)
    with torch.no_grad():
        expected = tokenizer.encode(collate([images[0]])["images"])
    assert torch.equal(test_codes[0]["indices"], expected[0].long())
    assert test_codes[0]["id"] == images[0]["id"]
    # The LG run's folder holds its tokenizer under base/ beside the heads: its codes record that folder.
    on = load_code_manifest(code_dirs["vqgan-on-s0"])
    assert on.tokenizer.path.endswith("vqgan-on-s0/base")
    assert on.tokenizer.weights_sha256 != manifest.tokenizer.weights_sha256
    # The console headline (LGVQ_PROGRESS_DIR): rows, grid and the train split's code usage.
    monkeypatch.setenv("LGVQ_PROGRESS_DIR", str(tmp_path / "progress"))
    argv = ["--params", str(world["params"]), "--run", str(world["models"] / "vqgan-off-s0")]
    assert codes.main([*argv, "--shards", str(world["shards"]), "--out", str(tmp_path / "again")]) == 0
    headline = json.loads((tmp_path / "progress" / "headline.json").read_text())["text"]
    used, size = codes.code_usage(code_dirs["vqgan-off-s0"])
    assert headline == f"48 images → 8×8 codes; train uses {used}/{size}" and 1 <= used <= size == 32


def test_caption_stage_trains_under_ray_and_evaluates_on_test(
    world: dict[str, Path], code_dirs: dict[str, Path], ray_local: Any
) -> None:
    run = "vqgan-on-s0"
    assert caption.main(_stage_argv(world, code_dirs, "caption", run)) == 0
    root = world["root"]
    report = json.loads((root / "reports" / f"caption-{run}.json").read_text())
    pipeline = report["pipeline"]
    assert pipeline["stage"] == f"caption@{run}" and (pipeline["base"], pipeline["lg"]) == ("vqgan", True)
    assert pipeline["train"]["steps"] == 4 and pipeline["train"]["world_size"] == 1
    assert pipeline["train"]["images"] == 24  # the train split only
    assert report["split"] == "test" and report["num_images"] == 12  # the test split only
    for key in ("BLEU-4", "ROUGE-L", "CIDEr-D", "distinct_caption_ratio"):
        assert key in report["metrics"] and key in report["baseline"]["metrics"]
    assert "CIDEr-D" in report["shuffled_codes"]["metrics"]
    assert report["examples"] and all("indices" not in e for e in report["examples"])
    assert (root / "reports" / f"caption-{run}.png").read_bytes()[:8] == PNG
    checkpoint = root / "models" / "downstream" / f"caption-{run}"
    history = json.loads((checkpoint / "train-history.json").read_text())
    assert len(history["loss"]) == 4 and history["resumed_from"] == 0
    assert json.loads((checkpoint / "task.json").read_text())["task"] == "captioning"
    assert pipeline["config"]["train"]["steps"] == 4 and pipeline["config"]["width"] == 32


def test_retrieve_stage_uses_lg_heads_or_fits_a_probe(
    world: dict[str, Path], code_dirs: dict[str, Path], ray_local: Any
) -> None:
    root = world["root"]
    for run, heads, steps in (("vqgan-on-s0", "lg", 0), ("vqgan-off-s0", "probe", 2)):
        assert retrieve.main(_stage_argv(world, code_dirs, "retrieve", run)) == 0
        report = json.loads((root / "reports" / f"retrieve-{run}.json").read_text())
        assert report["heads"] == heads and report["pipeline"]["train"]["steps"] == steps
        assert report["split"] == "test" and report["images"] == 12
        assert report["chance"]["recall@1"] > 0 and 0 <= report["recall@1"] <= 1
        assert (root / "reports" / f"retrieve-{run}.png").read_bytes()[:8] == PNG
    probe = json.loads(
        (root / "models" / "downstream" / "retrieve-vqgan-off-s0" / "retrieval.json").read_text()
    )
    assert probe["heads"] == "probe" and probe["probe"]["steps"] == 2


def test_a_run_that_did_not_make_the_codes_is_refused(
    world: dict[str, Path], code_dirs: dict[str, Path], tmp_path: Path
) -> None:
    """vqa on the codes of vqgan-off-s0 with the tokenizer of vqgan-on-s0 (another weights file): refused
    before any training, naming both tokenizers."""
    from lgvq_downstream.codes import TokenizerMismatchError
    from pipelines.downstream import vqa

    argv = _stage_argv(world, {"vqgan-on-s0": code_dirs["vqgan-off-s0"]}, "vqa", "vqgan-on-s0")
    argv[argv.index("--out") + 1] = str(tmp_path / "out")
    with pytest.raises(TokenizerMismatchError, match="weights_sha256") as caught:
        vqa.main(argv)
    assert str(code_dirs["vqgan-off-s0"]) in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_generate_stage_trains_one_generator_and_scores_the_four_tasks(
    world: dict[str, Path], code_dirs: dict[str, Path], ray_local: Any
) -> None:
    """The judges stage trains the scene judges on the train split; the generate stage trains one generator
    under Ray Train and scores every task on the test split beside its references, with one PNG per task."""
    root = world["root"]
    judges_dir = root / "models" / "judges"
    argv = ["--params", str(world["params"]), "--log-level", "WARNING"]
    assert judges.main([*argv, "--shards", str(world["shards"]), "--out", str(judges_dir),
                        "--metrics", str(root / "reports" / "judges.json")]) == 0  # fmt: skip
    scores = json.loads((root / "reports" / "judges.json").read_text())
    assert (scores["data"]["split_train"], scores["data"]["split_eval"]) == ("train", "test")
    assert scores["data"]["train_images"] == 24 and "object_recall" in scores["attribute"]["held_out"]["real"]
    assert (judges_dir / "judges.json").is_file()
    run = "vqgan-on-s0"
    figures = root / "reports" / f"generate-{run}"
    assert generate.main([
        *argv, "--run", str(world["models"] / run), "--codes", str(code_dirs[run]), "--judges", str(judges_dir),
        "--out", str(root / "models" / "downstream" / f"generate-{run}"),
        "--metrics", str(root / "reports" / f"generate-{run}.json"), "--figures", str(figures),
    ]) == 0  # fmt: skip
    report = json.loads((root / "reports" / f"generate-{run}.json").read_text())
    assert set(report["tasks"]) == {"unconditional", "completion", "semantic", "text_to_image"}
    assert report["protocol"]["split"] == "test" and report["protocol"]["num_samples"] == 4
    pipeline = report["pipeline"]
    assert pipeline["train"]["steps"] == 4 and pipeline["train"]["images"] == 24  # the train split only
    assert pipeline["peak_memory_mib"] > 0 and pipeline["train"]["peak_memory_mib"] > 0
    for task in ("semantic", "text_to_image"):
        consistency = report["tasks"][task]["consistency"]
        assert {"samples", "real_images", "reconstructions", "unigram_baseline"} <= set(consistency)
    assert report["tasks"]["completion"]["given_codes_unchanged"]
    assert report["nll"]["uniform"] > 0 and "examples" not in report["tasks"]["unconditional"]
    for task in report["tasks"]:
        assert (figures / f"{task}.png").read_bytes()[:8] == PNG


def test_judges_stage_on_data_without_scenes_writes_why(world: dict[str, Path], tmp_path: Path) -> None:
    import torch

    from lgvq_downstream.tasks.generation.scoring import NO_JUDGES, SampleScorer
    from pipelines.downstream.judges import no_judges

    assert no_judges(tmp_path / "judges", tmp_path / "judges.json", ["cub"], 0.0) == 0
    assert "cub" in json.loads((tmp_path / "judges" / NO_JUDGES).read_text())["reason"]
    scorer = SampleScorer(torch.zeros(4, 3, 16, 16, dtype=torch.uint8), judges=tmp_path / "judges", fd_size=32)
    assert not scorer.has_judges

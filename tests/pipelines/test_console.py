"""The console of `make pipeline` (pipelines.console) on real files: dvc's lines split into per-stage logs,
one start and one end line per stage with the stage's headline, nothing on screen that reads like an error on
success, the log tail and path on a failure, the summary table from a small summary.json, the progress bar
from the files a stage writes, and a real child process driven end to end. No Ray, no DVC: seconds."""

from __future__ import annotations

import io
import json
import re
import sys
import time
from pathlib import Path

import pytest

from pipelines import progress
from pipelines.console import dvc_output
from pipelines.console.bar import render
from pipelines.console.memory import PeakMemory, memory_in_use
from pipelines.console.runner import child_env, run
from pipelines.console.session import Outputs, Session
from pipelines.console.stage_logs import StageLogs, stage_log_name, tail
from pipelines.console.summary import summary_lines
from pipelines.console.terminal import Terminal
from pipelines.console.watcher import ProgressWatcher

ALARM = re.compile(r"error|warn|fail|traceback", re.IGNORECASE)


class Clock:
    """A settable clock for the session (stage wall times)."""

    def __init__(self, now: float = 1_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _session(
    tmp_path: Path, clock: Clock | None = None, live: bool = False, memory: PeakMemory | None = None
) -> tuple[Session, io.StringIO]:
    screen = io.StringIO()
    session = Session(
        Terminal(screen, live=live),
        StageLogs(tmp_path / "logs"),
        ProgressWatcher(tmp_path / "logs" / "progress"),
        Outputs(summary=tmp_path / "summary.json", report=tmp_path / "report.md", logs=tmp_path / "logs"),
        clock=clock or Clock(),
        memory=memory,
    )
    return session, screen


def _headline(folder: Path, text: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(progress.ENV, str(folder))
    progress.headline(text)


def test_dvc_lines_are_recognised() -> None:
    assert dvc_output.parse("Running stage 'train@vqgan-off-0':") == dvc_output.StageStarted(
        "train@vqgan-off-0"
    )
    assert dvc_output.parse("\x1b[33mRunning stage 'data':\x1b[0m") == dvc_output.StageStarted("data")
    assert dvc_output.parse("Stage 'validate' didn't change, skipping") == dvc_output.StageSkipped(
        "validate", "up to date"
    )
    cached = dvc_output.parse("Stage 'tune' is cached - skipping run, checking out outputs")
    assert cached == dvc_output.StageSkipped("tune", "restored from the run cache")
    assert dvc_output.parse("Updating lock file 'dvc.lock'") == dvc_output.LockUpdated()
    # a stage's own output that merely mentions a stage is not an event
    assert dvc_output.parse("2026 INFO __main__: Running stage 'x': no") is None
    assert dvc_output.parse("> python -m pipelines.train --base vqgan") is None


def test_success_one_start_and_end_line_per_stage_and_logs_split(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    session, screen = _session(tmp_path, clock)
    folder = tmp_path / "logs" / "progress"
    stream = [
        ("Stage 'data' didn't change, skipping", None),
        ("Running stage 'tune':", None),
        ("> python -m pipelines.tune --shards data/shards --out tune", None),
        ("2026-12-02 12:52:20,187\tWARNING authentication_token_setup.py:85 -- Token ...", None),
        ("Traceback (most recent call last): (a retried trial)", "best objective 0.1557 of 4 trials"),
        ("Updating lock file 'dvc.lock'", None),
        ("", None),
        ("Running stage 'train@vqgan-off-0':", None),
        (
            "> python -m pipelines.train --base vqgan --lg off --seed 0",
            "reconstruction loss 0.0759 after 400 steps",
        ),
        ("Updating lock file 'dvc.lock'", None),
        ("Use `dvc push` to send your updates to remote storage.", None),
    ]
    for line, headline in stream:
        session.feed(line)
        clock.now += 61  # each line a minute apart: stage times are whole minutes
        if headline:
            _headline(folder, headline, monkeypatch)
    assert session.finish(0) == 0

    shown = screen.getvalue().splitlines()
    assert not [line for line in shown if ALARM.search(line)], shown
    assert sum("▶ tune" in line for line in shown) == 1 and sum("✓ tune" in line for line in shown) == 1
    assert sum("▶ train@vqgan-off-0" in line for line in shown) == 1
    end_tune = next(line for line in shown if "✓ tune" in line)
    assert "4:04" in end_tune and "best objective 0.1557 of 4 trials" in end_tune  # 4 lines x 61 s
    end_train = next(line for line in shown if "✓ train@vqgan-off-0" in line)
    assert "reconstruction loss 0.0759" in end_train and "best objective" not in end_train
    assert any("up to date: data" in line for line in shown)
    assert any(line.startswith("pipeline: 2 stages ran") for line in shown)

    logs = tmp_path / "logs"
    tune_log = (logs / "tune.log").read_text().splitlines()
    assert tune_log[0] == "Running stage 'tune':" and "WARNING authentication" in tune_log[2]
    assert not any("train" in line for line in tune_log)  # its own lines only, no lock update, no next stage
    train_log = (logs / "train@vqgan-off-0.log").read_text().splitlines()
    assert train_log[1].startswith("> python -m pipelines.train")
    everything = (logs / "dvc.log").read_text().splitlines()
    assert everything == [line for line, _ in stream]  # dvc.log is the whole stream, in order
    assert not list(folder.glob("*.json")), "the progress files of an ended stage are cleared"


def test_failure_prints_the_stage_the_tail_of_its_log_and_its_path(tmp_path: Path) -> None:
    clock = Clock()
    session, screen = _session(tmp_path, clock)
    session.feed("Running stage 'evaluate@vqgan-on-1':")
    for i in range(1, 41):
        session.feed(f"output line {i}")
    session.feed(
        "ERROR: failed to reproduce 'evaluate@vqgan-on-1': failed to run: python -m ..., exited with 1"
    )
    clock.now += 12
    assert session.finish(1) == 1

    shown = screen.getvalue()
    log = tmp_path / "logs" / "evaluate@vqgan-on-1.log"
    assert "✗ evaluate@vqgan-on-1 failed after 12 s" in shown
    assert f"full log: {log}" in shown and str(tmp_path / "logs" / "dvc.log") in shown
    assert "│ output line 12" in shown and "│ output line 11\n" not in shown  # exactly the last 30 lines
    assert "│ ERROR: failed to reproduce" in shown
    assert "pipeline:" not in shown.split("✗")[1]  # no summary after a failure
    assert len(log.read_text().splitlines()) == 42


def test_failure_before_any_stage_shows_the_dvc_log(tmp_path: Path) -> None:
    session, screen = _session(tmp_path)
    session.feed("ERROR: 'dvc.yaml' validation failed")
    assert session.finish(255) == 255
    assert "✗ dvc repro exited with code 255" in screen.getvalue()
    assert "│ ERROR: 'dvc.yaml' validation failed" in screen.getvalue()


def test_nothing_to_run(tmp_path: Path) -> None:
    session, screen = _session(tmp_path)
    for stage in ("data", "validate", "report"):
        session.feed(f"Stage '{stage}' didn't change, skipping")
    session.feed("Data and pipelines are up to date.")
    session.finish(0)
    shown = screen.getvalue().splitlines()
    assert "up to date: data, validate, report" in shown[0]
    assert "pipeline: nothing to run, every stage is up to date (3)" in shown
    assert not any(ALARM.search(line) for line in shown)


def test_summary_table_from_a_small_summary_json(tmp_path: Path) -> None:
    summary = tmp_path / "summary.json"
    summary.write_text(
        json.dumps(
            {
                "models": {
                    "vqgan-on": {
                        "psnr": 23.466,
                        "ssim": 0.8289,
                        "codebook_usage": 0.6927,
                        "diagnostics.recall_gain_mask1": 0.0158,
                    },
                    "vqgan-off": {"psnr": 23.217, "ssim": 0.8258, "codebook_usage": 0.6719},
                },
                "paired_deltas": {
                    "vqgan/psnr": {"mean": 0.249, "low": -0.6, "high": 1.1, "n": 3, "excludes_zero": False},
                    "vqgan/ssim": {"mean": 0.003, "low": -0.04, "high": 0.05, "n": 3, "excludes_zero": False},
                },
                "runs_evaluated": 6,
                "runs_expected": 6,
            }
        )
    )
    out = summary_lines(summary, tmp_path / "report.md", tmp_path / "logs")
    text = "\n".join(out)
    rows = [line.split() for line in out if line.strip().startswith(("VQ-GAN", "model"))]
    header, off, on = rows[0], rows[1], rows[2]
    assert off[0] == "VQ-GAN" and on[0] == "VQ-GAN+LG"  # base first, then +LG
    assert off[1:4] == ["23.22", "0.826", "67.2"] and off[-1] == "—"  # no LG diagnostics without LG
    assert on[1:5] == ["23.47", "0.829", "69.3", "1.6"]  # recall gain in points
    assert "FD" not in header  # a column no model has is left out
    assert "VQ-GAN+LG vs VQ-GAN: PSNR +0.25 dB [-0.60, +1.10] over 3 seeds, not distinguishable" in text
    assert "SSIM +" not in text  # the PSNR delta is the headline, the rest is in the report
    assert "6 of 6 runs" in text and str(tmp_path / "report.md") in text and "dvc.log" in text

    one = json.loads(summary.read_text())
    one["paired_deltas"]["vqgan/psnr"].update(n=1, low=0.249, high=0.249)
    summary.write_text(json.dumps(one))
    text = "\n".join(summary_lines(summary, tmp_path / "report.md", tmp_path / "logs"))
    assert "PSNR +0.25 dB (one seed: no interval)" in text and "[+0.25" not in text

    missing = "\n".join(summary_lines(tmp_path / "none.json", tmp_path / "report.md", tmp_path / "logs"))
    assert "none.json yet" in missing and "dvc.log" in missing


def test_watcher_follows_the_bar_a_stage_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "progress"
    watcher = ProgressWatcher(folder)
    monkeypatch.setenv(progress.ENV, str(folder))
    stale = progress.bar("old", "tune", 4, unit="trial")
    stale.update(2, force=True)
    watcher.start(since=time.time() + 0.01)
    time.sleep(0.02)
    assert watcher.current() is None, "a bar not updated since the stage started is not shown"

    bar = progress.bar("train", "train", 400)
    bar.update(100, force=True)
    bar.state = progress.BarState(**{**bar.state.__dict__, "started": bar.state.updated - 50.0})
    bar.update(142, note="reconstruction 0.0810", force=True)  # 42 steps in ~50 s
    state = watcher.current()
    assert state is not None and state.name == "train" and state.done == 142
    line = render(state, width=200, now=state.updated)
    assert "142/400 steps" in line and "reconstruction 0.0810" in line
    assert "s/step" in line  # < 1 step/s is shown as seconds per step
    eta = re.search(r"ETA (\d+):(\d\d)", line)
    assert eta and 240 <= int(eta[1]) * 60 + int(eta[2]) <= 330  # 258 steps at ~0.84 step/s
    later = render(state, width=200, now=state.updated + 60)  # counts down between writes
    eta2 = re.search(r"ETA (\d+):(\d\d)", later)
    assert eta2 and int(eta2[1]) * 60 + int(eta2[2]) == int(eta[1]) * 60 + int(eta[2]) - 60
    assert len(render(state, width=30, now=state.updated)) == 30  # never wider than the terminal

    parts = progress.Parts("evaluate", "evaluate", ["reconstruction", "figures", "probe fit"])
    parts.begin("probe fit")
    now = time.time()
    shown = render(watcher.current(), width=200, now=now, since=now - 75)
    assert "2/3 parts" in shown and "probe fit" in shown and "ETA" not in shown  # parts: no ETA ...
    assert "1:15 elapsed" in shown  # ... but the time since the stage started

    assert progress.read_headline(folder) is None
    progress.headline("PSNR 23.26 dB")
    assert watcher.headline() == "PSNR 23.26 dB"
    watcher.clear()
    assert watcher.headline() is None and not list(folder.glob("*.json"))


def test_progress_is_inert_without_a_console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert not progress.active()
    progress.bar("train", "train", 10).update(5, force=True)
    progress.headline("x")
    assert list(tmp_path.rglob("*")) == []


def test_live_bar_is_redrawn_in_place_and_cleared_before_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    session, screen = _session(tmp_path, Clock(time.time()), live=True)
    session.feed("Running stage 'train@vqct-on-0':")
    monkeypatch.setenv(progress.ENV, str(tmp_path / "logs" / "progress"))
    bar = progress.bar("train", "train", 4)
    for step in (1, 2):
        bar.update(step, force=True)
        session.tick()
    session.feed("Updating lock file 'dvc.lock'")
    raw = screen.getvalue()
    assert raw.count("2/4 steps") == 1 and raw.count("1/4 steps") == 1
    # the end line starts after the bar was erased (carriage return + clear line)
    assert "\r\x1b[K" + next(line for line in raw.split("\r\x1b[K") if "✓ train@vqct-on-0" in line) in raw
    assert "\n" not in raw.split("▶ train@vqct-on-0")[1].split("✓")[0].strip("\n")  # bars stay on one line


def test_runner_drives_a_real_child_and_returns_its_code(tmp_path: Path) -> None:
    script = tmp_path / "fake_dvc.py"
    script.write_text(
        "import sys\n"
        "print(\"Running stage 'data':\")\n"
        "print('build synthetic:  50%|#####     |\\rbuild synthetic: 100%|##########|')\n"
        "print('a warning on stderr', file=sys.stderr)\n"
        "from pipelines import progress\n"
        "progress.headline('48 images in 3 shards')\n"
        "print(\"Updating lock file 'dvc.lock'\")\n"
        "print(\"Running stage 'report':\")\n"
        "sys.exit(3)\n"
    )
    session, screen = _session(tmp_path)
    env = child_env(
        {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
        tmp_path / "logs" / "progress",
    )
    assert env["PYTHONUNBUFFERED"] == "1" and Path(env[progress.ENV]).is_absolute()
    assert run([sys.executable, str(script)], session, env, poll=0.05) == 3
    shown = screen.getvalue()
    assert "✓ data" in shown and "48 images in 3 shards" in shown
    assert "✗ report failed" in shown
    with (tmp_path / "logs" / "data.log").open(newline="") as log:
        data_log = log.read()
    assert "\rbuild synthetic: 100%" in data_log and "a warning on stderr" in data_log  # raw, stderr merged
    assert tail(tmp_path / "logs" / "data.log", 2)[0].startswith("build synthetic: 100%")  # tail: after \r


def test_stage_log_names() -> None:
    assert stage_log_name("train@vqgan-off-0") == "train@vqgan-off-0.log"
    assert stage_log_name("sub/dvc.yaml:train") == "sub_dvc.yaml_train.log"


def test_each_stage_end_line_and_stages_json_carry_its_wall_time_and_peak_memory(tmp_path: Path) -> None:
    readings = iter(
        [
            1_000_000_000,
            1_000_000_000,
            1_500_000_000,
            3_100_000_000,
            1_200_000_000,
            1_000_000_000,
            1_400_000_000,
            1_100_000_000,
        ]
    )
    memory = PeakMemory(lambda: next(readings))  # baseline 1.0 GB
    clock = Clock()
    session, screen = _session(tmp_path, clock, memory=memory)
    session.feed("Running stage 'train@a':")  # reset: 1.0 GB
    session.tick()  # 1.5
    session.tick()  # 3.1 -> peak 2.1 GB above the start
    clock.now += 65
    session.feed("Running stage 'eval@a':")  # close train@a (sample 1.2), reset for eval@a (1.0)
    session.tick()  # 1.4
    clock.now += 5
    assert session.finish(0) == 0  # close eval@a (sample 1.1): peak 0.4 GB
    text = screen.getvalue()
    assert "train@a" in text and "1:05  (peak 2.10 GB)" in text
    assert "(peak 0.40 GB)" in text
    record = json.loads((tmp_path / "logs" / "stages.json").read_text())["stages"]
    assert [(r["stage"], r["seconds"], r["peak_memory_bytes"]) for r in record] == [
        ("train@a", 65.0, 2_100_000_000),
        ("eval@a", 5.0, 400_000_000),
    ]
    # the real reader: this machine's /proc/meminfo gives a positive figure, a missing file gives None
    assert (memory_in_use() or 1) > 0
    assert memory_in_use(tmp_path / "no-meminfo") is None

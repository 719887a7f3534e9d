"""dvc.yaml's downstream stages agree with the ``downstream`` section of params.yaml and of every profile:
DVC resolves one ``codes@<run>`` per run and one ``<task>@<run>`` per listed task run (``[]`` switches a task
off), every listed run is one the ``train`` stage makes, every task section loads strictly, and each stage's
command, deps and outs name the paths its module reads and writes."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines.downstream.params import SECTION_CLASS, TASKS, SelectionParams, parse_run, task_config
from pipelines.params import from_mapping, get_path

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAM_FILES = [ROOT / "params.yaml", *sorted((ROOT / "params").glob("*.yaml"))]
PACKAGE = {"caption": "captioning", "vqa": "vqa", "ground": "grounding", "retrieve": "retrieval"}
UNDERSTANDING = tuple(PACKAGE)  # the task stages run by pipelines.downstream.task; generate has its own module


@pytest.mark.parametrize("path", PARAM_FILES, ids=lambda p: p.stem)
def test_downstream_sections_load_and_name_trained_runs(path: Path) -> None:
    params = yaml.safe_load(path.read_text())
    section = params["downstream"]
    selection = from_mapping(
        SelectionParams, {"runs": section["runs"], "tasks": section["tasks"]}, "downstream"
    )
    selection.check()
    assert set(section["tasks"]) == set(TASKS)
    for run in selection.runs:  # the train stage's matrix makes models/<base>-<off|on>-s<seed>
        base, _, seed = parse_run(run)
        assert base in params["runs"]["bases"] and seed in params["runs"]["seeds"], f"{path.name}: {run}"
    for task in TASKS:
        settings = from_mapping(SECTION_CLASS[task], section[task], f"downstream.{task}")
        task_config(task, settings.config)  # strict: a misspelt key fails here


def test_dvc_stages_read_and_write_what_their_modules_do() -> None:
    stages = DVC["stages"]
    codes = stages["codes"]
    assert codes["matrix"] == {"run": "${downstream.runs}"} and codes["params"] == ["downstream.codes"]
    assert "--run models/${item.run}" in codes["cmd"] and "--out data/codes/${item.run}" in codes["cmd"]
    assert codes["outs"] == ["data/codes/${item.run}"] and "models/${item.run}" in codes["deps"]
    for task in UNDERSTANDING:
        stage = stages[task]
        assert stage["matrix"] == {"run": f"${{downstream.tasks.{task}}}"}
        assert stage["params"] == [f"downstream.{task}", "ray"]
        assert f"python -m pipelines.downstream.{task} " in stage["cmd"]
        for dep in ("data/codes/${item.run}", "models/${item.run}", f"pipelines/downstream/{task}.py"):
            assert dep in stage["deps"]
        assert f"packages/lgvq-downstream/src/lgvq_downstream/tasks/{PACKAGE[task]}" in stage["deps"]
        outs = [next(iter(o)) if isinstance(o, dict) else o for o in stage["outs"]]
        assert outs == [
            f"models/downstream/{task}-${{item.run}}",
            f"reports/downstream/{task}-${{item.run}}.png",
        ]
        assert [next(iter(m)) for m in stage["metrics"]] == [f"reports/downstream/{task}-${{item.run}}.json"]
        for flag, path in (("--out", outs[0]), ("--figure", outs[1]), ("--metrics", outs[1][:-3] + "json")):
            assert f"{flag} {path}" in stage["cmd"]
    generate = stages["generate"]
    assert generate["matrix"] == {"run": "${downstream.tasks.generate}"}
    assert generate["params"] == ["downstream.generate", "ray"] and "models/judges" in generate["deps"]
    assert "packages/lgvq-downstream/src/lgvq_downstream/tasks/generation" in generate["deps"]
    assert "packages/lgvq-downstream/src/lgvq_downstream/generation" in generate["deps"]
    outs = [next(iter(o)) if isinstance(o, dict) else o for o in generate["outs"]]
    assert outs == ["models/downstream/generate-${item.run}", "reports/downstream/generate-${item.run}"]
    for flag, path in (("--out", outs[0]), ("--figures", outs[1]), ("--metrics", outs[1] + ".json")):
        assert f"{flag} {path}" in generate["cmd"]
    judges = stages["judges"]
    assert judges["params"] == ["downstream.judges"] and "data/shards" in judges["deps"]
    assert [next(iter(o)) if isinstance(o, dict) else o for o in judges["outs"]] == ["models/judges"]
    report = stages["report"]
    assert "reports/downstream" in report["deps"] and "downstream.tasks" in report["params"]
    assert "--downstream reports/downstream" in report["cmd"]
    # Every module a stage imports from pipelines/downstream is a dep of it.
    for name in ("codes", "judges", *TASKS):
        module_file = "task" if name in UNDERSTANDING else name
        source = (ROOT / "pipelines" / "downstream" / f"{module_file}.py").read_text()
        for module in re.findall(r"from pipelines\.downstream(?:\.(\w+))? import", source):
            if module:
                assert f"pipelines/downstream/{module}.py" in stages[name]["deps"], (name, module)


def _dvc(repo: Path, *args: str) -> str:
    env = dict(os.environ, DVC_NO_ANALYTICS="1", PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    out = subprocess.run(["dvc", *args], cwd=repo, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    return out.stdout


def test_dvc_resolves_one_stage_per_listed_run_and_a_task_can_be_switched_off(tmp_path: Path) -> None:
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    section = params["downstream"]
    section["tasks"]["caption"] = []  # switched off
    section["tasks"]["vqa"] = list(section["runs"])  # switched on
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    shutil.copy2(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    _dvc(tmp_path, "init", "--no-scm", "-q")
    listed = {line.split()[0] for line in _dvc(tmp_path, "stage", "list").splitlines() if line.strip()}
    downstream = {s for s in listed if s.split("@")[0] in ("codes", *TASKS)}
    expected = {f"codes@{run}" for run in section["runs"]}
    expected |= {f"{task}@{run}" for task in TASKS for run in section["tasks"][task]}
    assert downstream == expected and not any(s.startswith("caption@") for s in listed)
    assert {"vqa@vqgan-off-s0", "vqa@vqgan-on-s0", "codes@vqgan-on-s0"} <= downstream
    get_path(params, "downstream.codes")  # what codes@ declares exists

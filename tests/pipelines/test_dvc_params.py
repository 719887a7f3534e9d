"""dvc.yaml and params.yaml agree with the stage code: each stage declares exactly the params sections its
module
reads (``PARAMS``), each declared key exists, each stage depends on its own module, and the loader is
strict."""

from __future__ import annotations

import dataclasses
import importlib
import re
from pathlib import Path

import pytest
import yaml

from pipelines.params import ParamsError, StageParams, from_mapping, get_path, read_yaml

ROOT = Path(__file__).resolve().parents[2]
DVC = yaml.safe_load((ROOT / "dvc.yaml").read_text())
PARAMS = read_yaml(ROOT / "params.yaml")
STAGES = sorted(DVC["stages"])


def _module(stage: dict) -> str:
    match = re.search(r"python -m (pipelines(?:\.\w+)+)", stage["cmd"])
    assert match, f"stage cmd does not run a pipelines module: {stage['cmd']}"
    return match.group(1)


def _declared(stage: dict) -> set[str]:
    names: set[str] = set()
    for entry in stage.get("params", []):
        if isinstance(entry, str):
            names.add(entry)
        else:  # {file: [keys]} — other params files are checked where they are produced
            continue
    return names


@pytest.mark.parametrize("name", STAGES)
def test_stage_declares_exactly_what_its_module_reads(name: str) -> None:
    stage = DVC["stages"][name]
    module = importlib.import_module(_module(stage))
    assert set(module.PARAMS) == _declared(stage), f"{name}: dvc.yaml params != {module.__name__}.PARAMS"


@pytest.mark.parametrize("name", STAGES)
def test_declared_params_exist(name: str) -> None:
    for key in _declared(DVC["stages"][name]):
        get_path(PARAMS, key, source="params.yaml")


@pytest.mark.parametrize("name", STAGES)
def test_stage_depends_on_its_own_module(name: str) -> None:
    stage = DVC["stages"][name]
    module_file = _module(stage).replace(".", "/") + ".py"
    assert module_file in stage["deps"], f"{name}: {module_file} missing from deps"
    produced = _produced_paths()
    for dep in stage["deps"]:
        if "${" not in dep and not any(
            dep == out or dep.startswith(out + "/") or out.startswith(dep + "/") for out in produced
        ):
            assert (ROOT / dep).exists(), f"{name}: dep {dep} is neither in the repo nor a stage output"


def _produced_paths() -> set[str]:
    """Every path a stage writes (outs, metrics, plots); matrix placeholders cut off at the first ``${``."""
    paths: set[str] = set()
    for stage in DVC["stages"].values():
        for key in ("outs", "metrics", "plots"):
            for entry in stage.get(key, []):
                path = next(iter(entry)) if isinstance(entry, dict) else entry
                paths.add(path.split("${")[0].rstrip("/") if "${" in path else path)
    return paths


@dataclasses.dataclass(frozen=True)
class _Inner:
    lr: float
    betas: tuple[float, float] = (0.5, 0.9)


@dataclasses.dataclass(frozen=True)
class _Outer:
    name: str
    inner: _Inner


def test_loader_is_strict_and_names_the_key_path() -> None:
    ok = from_mapping(_Outer, {"name": "a", "inner": {"lr": 1, "betas": [0.1, 0.2]}}, "train")
    assert ok == _Outer("a", _Inner(1.0, (0.1, 0.2)))
    with pytest.raises(ParamsError, match=r"train\.inner\.lrr"):
        from_mapping(_Outer, {"name": "a", "inner": {"lr": 1, "lrr": 2}}, "train")
    with pytest.raises(ParamsError, match=r"missing key 'train\.inner\.lr'"):
        from_mapping(_Outer, {"name": "a", "inner": {}}, "train")
    with pytest.raises(ParamsError, match=r"train\.inner\.lr: expected a number"):
        from_mapping(_Outer, {"name": "a", "inner": {"lr": "fast"}}, "train")


def test_stage_params_refuse_undeclared_sections(tmp_path: Path) -> None:
    path = tmp_path / "params.yaml"
    path.write_text("a: {lr: 1.0}\nb: {lr: 2.0}\n")
    sp = StageParams(path, ("a",))
    assert sp.section("a", _Inner).lr == 1.0
    with pytest.raises(ParamsError, match="declares only"):
        sp.section("b", _Inner)

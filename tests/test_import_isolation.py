"""The two leaf packages stay leaves: importing them (and every submodule) pulls in no Ray, DVC, YAML,
great-expectations, nor the other leaf. Each check runs in a fresh interpreter so earlier imports cannot hide
a leak."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORBIDDEN = {
    "lgvq_core": ["ray", "dvc", "great_expectations", "yaml", "lgvq_data", "lgvq_downstream", "pipelines"],
    "lgvq_data": ["ray", "dvc", "great_expectations", "yaml", "lgvq_core", "lgvq_downstream", "pipelines"],
}

PROBE = r"""
import importlib, json, pkgutil, sys
name, walk = sys.argv[1], sys.argv[2] == "walk"
pkg = importlib.import_module(name)
imported = [name]
if walk:
    for info in pkgutil.walk_packages(pkg.__path__, prefix=name + "."):
        if info.name.rsplit(".", 1)[-1] == "__main__":
            continue
        importlib.import_module(info.name)
        imported.append(info.name)
print(json.dumps({"imported": imported, "modules": sorted(m.split(".")[0] for m in sys.modules)}))
"""


def _probe(package: str, walk: bool) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", PROBE, package, "walk" if walk else "top"],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert out.returncode == 0, f"importing {package} failed:\n{out.stderr[-3000:]}"
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
@pytest.mark.parametrize("walk", [False, True], ids=["top-level", "every-submodule"])
def test_leaf_package_imports_nothing_forbidden(package: str, walk: bool) -> None:
    result = _probe(package, walk)
    leaked = sorted(set(FORBIDDEN[package]) & set(result["modules"]))
    assert not leaked, f"import {package} ({len(result['imported'])} modules) pulled in {leaked}"
    if walk:
        assert len(result["imported"]) > 1, "the walk imported no submodule"

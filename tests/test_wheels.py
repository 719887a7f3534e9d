"""Each member builds a wheel that installs into an empty virtual environment and imports there.

The empty venv sees the already-installed third-party packages (torch and friends) through a path entry
appended
*after* its own site-packages; that entry is not a site directory, so the editable installs of this checkout
are not
visible there. Whatever `lgvq_*` imports in the venv must therefore come from the wheels just built.
"""

from __future__ import annotations

import json
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEMBERS = {  # distribution folder -> (import name, wheels it needs installed alongside)
    "lgvq-core": ("lgvq_core", []),
    "lgvq-data": ("lgvq_data", []),
    "lgvq-downstream": ("lgvq_downstream", ["lgvq-core", "lgvq-data"]),
}

CHECK = r"""
import importlib, importlib.metadata as md, json, sys
from packaging.requirements import Requirement
name, dist = sys.argv[1], sys.argv[2]
mod = importlib.import_module(name)
missing = []
for line in md.requires(dist) or []:
    req = Requirement(line)
    if req.marker is not None and not req.marker.evaluate({"extra": ""}):
        continue
    try:
        version = md.version(req.name)
    except md.PackageNotFoundError:
        missing.append(str(req)); continue
    if not req.specifier.contains(version, prereleases=True):
        missing.append(f"{req} (found {version})")
print(json.dumps({"file": mod.__file__, "missing": missing}))
"""


@pytest.fixture(scope="module")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheels")
    for member in MEMBERS:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "-q",
                "--no-deps",
                "--no-build-isolation",
                "-w",
                str(out),
                str(ROOT / "packages" / member),
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return out


def _wheel(wheelhouse: Path, member: str) -> Path:
    (found,) = wheelhouse.glob(member.replace("-", "_") + "-*.whl")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("member", sorted(MEMBERS))
def test_member_wheel_installs_and_imports_alone(member: str, wheelhouse: Path, tmp_path: Path) -> None:
    import_name, companions = MEMBERS[member]
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    py = env_dir / "bin" / "python"
    purelib = Path(
        subprocess.check_output(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"], text=True
        ).strip()
    )
    # Third-party packages from the project environment, after the venv's own site-packages.
    (purelib / "zz_third_party.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    wheels = [_wheel(wheelhouse, m) for m in [*companions, member]]
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(py), "install", "-q", "--no-deps", *map(str, wheels)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    out = subprocess.run(
        [str(py), "-c", CHECK, import_name, member], capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert Path(result["file"]).is_relative_to(env_dir), (
        f"{import_name} came from {result['file']}, not the wheel"
    )
    assert not result["missing"], f"{member}: declared requirements not satisfied: {result['missing']}"

"""The data and validate stages in-process: synthetic shards from params, a passing report, and a failing one
(exit 1, the bad shard/row/column named) when a caption is emptied."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pytest
from pipeline_helpers import tiny_params

from pipelines import data, validate
from pipelines.params import ParamsError


def test_data_then_validate(tmp_path: Path) -> None:
    params = tiny_params(tmp_path)
    shards = tmp_path / "shards"
    assert data.main(["--params", str(params), "--out", str(shards)]) == 0
    manifest = json.loads((shards / "manifest.json").read_text())
    assert sum(s["rows"] for s in manifest["shards"]) == 48

    report_path = tmp_path / "validation.json"
    assert (
        validate.main(["--params", str(params), "--shards", str(shards), "--report", str(report_path)]) == 0
    )
    assert json.loads(report_path.read_text())["success"] is True


def test_validate_rejects_an_empty_caption(tmp_path: Path) -> None:
    params = tiny_params(tmp_path)
    shards = tmp_path / "shards"
    data.main(["--params", str(params), "--out", str(shards)])
    first = shards / json.loads((shards / "manifest.json").read_text())["shards"][0]["name"]
    table = pa.ipc.open_file(pa.BufferReader(first.read_bytes())).read_all()  # a copy: the file is rewritten
    captions = table.column("captions").to_pylist()
    captions[3] = [""] + captions[3][1:]
    table = table.set_column(
        table.schema.get_field_index("captions"),
        "captions",
        pa.array(captions, type=table.schema.field("captions").type),
    )
    with pa.OSFile(str(first), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    report_path = tmp_path / "validation.json"
    assert (
        validate.main(["--params", str(params), "--shards", str(shards), "--report", str(report_path)]) == 1
    )
    report = json.loads(report_path.read_text())
    assert report["success"] is False
    failed = {c["check"] for c in report["checks"] if not c["success"]}
    assert any("caption" in name for name in failed), failed


def test_data_stage_refuses_a_prebuilt_folder_without_manifest(tmp_path: Path) -> None:
    params = tiny_params(tmp_path, {"data": {"source": "prebuilt", "prebuilt_dir": str(tmp_path)}})
    with pytest.raises(ParamsError, match="no manifest.json"):
        data.main(["--params", str(params), "--out", str(tmp_path / "shards")])
    assert not (tmp_path / "shards").exists()

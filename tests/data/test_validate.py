from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from lgvq_data.cli import main
from lgvq_data.schema import SCHEMA
from lgvq_data.shards import MANIFEST_NAME, ShardWriter, sha256_file
from lgvq_data.sources import synthetic
from lgvq_data.sources.scenes import encode_png
from lgvq_data.validate import validate_shards


def _write(out: Path, rows: list[dict]) -> Path:
    with ShardWriter(out, rows_per_shard=4) as writer:  # the writer itself does not check rows
        for row in rows:
            writer.write(row)
    return out


def _failed(report) -> dict[str, list]:
    return {c.check: c.failures for c in report.checks if not c.success}


def test_clean_directory_passes(synthetic_dir: Path) -> None:
    report = validate_shards(synthetic_dir)
    assert report.success, _failed(report)
    payload = json.loads(report.to_json())
    assert payload["success"] is True and payload["total_rows"] == 120
    assert payload["summary"]["failed"] == 0


def test_each_bad_row_is_reported_with_shard_row_column(tmp_path: Path) -> None:
    rows = list(synthetic.records(12, image_size=16, seed=2))
    rows[1]["id"] = rows[0]["id"]  # duplicate id
    rows[2]["captions"] = ["fine", ""]  # empty caption
    rows[3]["image"] = b"\x89PNG\r\n\x1a\n garbage"  # corrupt image
    rows[5]["width"] = 17  # size mismatch
    rows[5]["mask"] = None
    rows[6]["boxes"] = [{"label": "x", "x0": 2.0, "y0": 2.0, "x1": 40.0, "y1": 8.0}]  # outside
    rows[6]["refs"] = []
    rows[9]["mask"] = encode_png(np.zeros((8, 8), np.uint8))  # wrong mask size
    rows[10]["split"] = "dev"
    rows[11]["captions"] = ["x" * 150]
    report = validate_shards(_write(tmp_path / "bad", rows), max_caption_chars=120)
    assert not report.success
    failed = _failed(report)

    def location(check):
        return {(f.shard, f.row) for f in failed[check]}

    assert location("id:values_to_be_unique") == {("shard-00000.arrow", 0), ("shard-00000.arrow", 1)}
    assert location("min_caption_chars") == {("shard-00000.arrow", 2)}
    assert location("image_decodes") == {("shard-00000.arrow", 3)}
    assert location("image_matches_size") == {("shard-00001.arrow", 1)}
    assert location("boxes_inside") == {("shard-00001.arrow", 2)}
    assert location("mask_matches_size") == {("shard-00002.arrow", 1)}
    assert location("split:values_to_be_in_set") == {("shard-00002.arrow", 2)}
    assert location("max_caption_chars") == {("shard-00002.arrow", 3)}
    assert failed["image_decodes"][0].column == "image"
    assert "decoded 16×16" in failed["image_matches_size"][0].reason
    assert failed["boxes_inside"][0].id == rows[6]["id"]
    assert set(failed) == {
        "id:values_to_be_unique",
        "min_caption_chars",
        "image_decodes",
        "image_matches_size",
        "boxes_inside",
        "mask_matches_size",
        "split:values_to_be_in_set",
        "max_caption_chars",
    }


def test_invalid_utf8_caption_is_reported(tmp_path: Path) -> None:
    out = _write(tmp_path / "d", list(synthetic.records(3, image_size=16)))
    shard = out / "shard-00000.arrow"
    table = pa.ipc.open_file(pa.BufferReader(shard.read_bytes())).read_all()  # not mmap: rewritten below
    captions = table.column("captions").combine_chunks()
    values = pa.array(
        [b"ok caption", b"bad \xff\xfe caption"] + [b"x"] * (len(captions.values) - 2), pa.binary()
    )
    bad_values = pa.Array.from_buffers(pa.string(), len(values), values.buffers())
    bad_captions = pa.ListArray.from_arrays(captions.offsets, bad_values)
    table = table.set_column(table.schema.get_field_index("captions"), SCHEMA.field("captions"), bad_captions)
    with pa.OSFile(str(shard), "wb") as sink, pa.ipc.new_file(sink, SCHEMA) as writer:
        writer.write_table(table)
    manifest = json.loads((out / MANIFEST_NAME).read_text())
    manifest["shards"][0]["sha256"] = sha256_file(shard)
    (out / MANIFEST_NAME).write_text(json.dumps(manifest))
    failed = _failed(validate_shards(out))
    assert set(failed) == {"captions_utf8"}
    assert failed["captions_utf8"][0].row == 0 and "invalid start byte" in failed["captions_utf8"][0].reason


def test_wrong_column_type_and_truncated_shard(tmp_path: Path) -> None:
    out = _write(tmp_path / "d", list(synthetic.records(8, image_size=16)))
    first = out / "shard-00000.arrow"
    table = pa.ipc.open_file(pa.BufferReader(first.read_bytes())).read_all()
    table = table.set_column(3, pa.field("width", pa.string()), pa.array(["16"] * table.num_rows))
    with pa.OSFile(str(first), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    second = out / "shard-00001.arrow"
    second.write_bytes(second.read_bytes()[:300])
    report = validate_shards(out)
    failed = _failed(report)
    assert [(f.shard, f.column) for f in failed["schema_matches_v1"]] == [("shard-00000.arrow", "width")]
    assert [f.shard for f in failed["shard_readable"]] == ["shard-00001.arrow"]
    assert {f.shard for f in failed["sha256_matches"]} == {"shard-00000.arrow", "shard-00001.arrow"}


def test_cli_validate_writes_report_and_exit_code(synthetic_dir: Path, tmp_path: Path) -> None:
    assert main(["validate", str(synthetic_dir), "--report", str(tmp_path / "ok.json")]) == 0
    assert json.loads((tmp_path / "ok.json").read_text())["success"] is True
    broken = tmp_path / "broken"
    shutil.copytree(synthetic_dir, broken)
    (broken / "shard-00001.arrow").unlink()
    assert main(["validate", str(broken), "--report", str(tmp_path / "bad.json")]) == 1
    report = json.loads((tmp_path / "bad.json").read_text())
    failing = [c for c in report["checks"] if not c["success"]]
    assert failing[0]["check"] == "shard_exists" and failing[0]["failures"][0]["shard"] == "shard-00001.arrow"


def test_cli_build_synthetic_and_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "syn"
    assert (
        main(
            [
                "build",
                "synthetic",
                "--n",
                "30",
                "--image-size",
                "16",
                "--seed",
                "4",
                "--out",
                str(out),
                "--rows-per-shard",
                "10",
                "--quiet",
            ]
        )
        == 0
    )
    assert "wrote 30 rows in 3 shards" in capsys.readouterr().out
    assert main(["info", str(out), "--rows", "1"]) == 0
    assert '"total_rows": 30' in capsys.readouterr().out
    assert main(["info", str(tmp_path / "missing")]) == 2

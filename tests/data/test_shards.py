from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pytest

from lgvq_data.schema import SCHEMA, SCHEMA_VERSION, RowError, check_row
from lgvq_data.shards import (
    MANIFEST_NAME,
    ShardError,
    ShardSet,
    ShardWriter,
    read_manifest,
    sha256_file,
    verify_manifest,
)
from lgvq_data.sources import synthetic


def _rows(n: int, size: int = 16) -> list[dict]:
    return list(synthetic.records(n, image_size=size, seed=1))


def test_round_trip_is_exact_and_shards_are_bounded(tmp_path: Path) -> None:
    rows = _rows(23)
    with ShardWriter(tmp_path / "out", rows_per_shard=10) as writer:
        for row in rows:
            writer.write(dict(row))
    manifest = read_manifest(tmp_path / "out")
    assert manifest["schema_version"] == SCHEMA_VERSION
    assert [s["rows"] for s in manifest["shards"]] == [10, 10, 3]
    assert manifest["total_rows"] == 23
    for entry in manifest["shards"]:
        assert entry["sha256"] == sha256_file(tmp_path / "out" / entry["name"])
    shards = ShardSet.open(tmp_path / "out", verify=True)
    assert len(shards) == 23
    for i, row in enumerate(rows):
        assert shards.row(i) == {name: row.get(name) for name in SCHEMA.names}
    assert not list(tmp_path.glob(".out.partial-*"))


def test_byte_bound_closes_shards_early(tmp_path: Path) -> None:
    rows = _rows(12)
    limit = 3 * len(rows[0]["image"])
    with ShardWriter(tmp_path / "out", rows_per_shard=1000, max_shard_bytes=limit) as writer:
        for row in rows:
            writer.write(row)
    sizes = [s["rows"] for s in read_manifest(tmp_path / "out")["shards"]]
    assert len(sizes) > 1 and sum(sizes) == 12 and max(sizes) <= 4


def test_exception_leaves_no_partial_output(tmp_path: Path) -> None:
    rows = _rows(5)
    with pytest.raises(RuntimeError, match="boom"):
        with ShardWriter(tmp_path / "out", rows_per_shard=2) as writer:
            for row in rows:
                writer.write(row)
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_killed_writer_leaves_no_output_and_next_writer_cleans_up(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from lgvq_data.shards import ShardWriter
        from lgvq_data.sources import synthetic
        writer = ShardWriter({str(tmp_path / "out")!r}, rows_per_shard=3)
        for row in synthetic.records(10, image_size=16):
            writer.write(row)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "out").exists()
    assert len(list(tmp_path.glob(".out.partial-*"))) == 1  # shards were flushed to staging only
    with ShardWriter(tmp_path / "out") as writer:
        writer.write(_rows(1)[0])
    assert not list(tmp_path.glob(".out.partial-*"))
    assert read_manifest(tmp_path / "out")["total_rows"] == 1


def test_overwrite_replaces_and_refuses_without_flag(tmp_path: Path) -> None:
    synthetic.build(tmp_path / "out", n=4, image_size=16)
    with pytest.raises(FileExistsError):
        ShardWriter(tmp_path / "out")
    synthetic.build(tmp_path / "out", n=6, image_size=16, overwrite=True)
    assert read_manifest(tmp_path / "out")["total_rows"] == 6
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_verify_detects_tampered_and_truncated_shards(tmp_path: Path) -> None:
    synthetic.build(tmp_path / "out", n=20, image_size=16, rows_per_shard=10)
    assert verify_manifest(tmp_path / "out") == []
    shard = tmp_path / "out" / "shard-00001.arrow"
    data = shard.read_bytes()
    shard.write_bytes(data[: len(data) // 2])
    problems = verify_manifest(tmp_path / "out")
    checks = {p.check for p in problems}
    assert {"sha256_matches", "shard_readable"} <= checks
    assert all(p.shard == "shard-00001.arrow" for p in problems)
    with pytest.raises(ShardError, match="shard-00001.arrow"):
        ShardSet.open(tmp_path / "out")


def test_manifest_row_count_mismatch_is_reported(tmp_path: Path) -> None:
    synthetic.build(tmp_path / "out", n=8, image_size=16)
    path = tmp_path / "out" / MANIFEST_NAME
    manifest = json.loads(path.read_text())
    manifest["shards"][0]["rows"] = 9
    path.write_text(json.dumps(manifest))
    assert [p.check for p in verify_manifest(tmp_path / "out")] == ["row_count_matches"]


def test_missing_manifest_and_wrong_version(tmp_path: Path) -> None:
    with pytest.raises(ShardError, match="missing manifest"):
        read_manifest(tmp_path)
    (tmp_path / MANIFEST_NAME).write_text(json.dumps({"schema_version": 99, "shards": []}))
    with pytest.raises(ShardError, match="schema_version 99"):
        read_manifest(tmp_path)


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("captions", [], "at least one caption"),
        ("captions", ["ok", "  "], r"captions\[1\].*empty"),
        ("captions", ["bad \udcff"], "UTF-8"),
        ("width", "64", "positive int"),
        ("split", "training", "not in"),
        ("image", "not-bytes", "expected bytes"),
        ("refs", [{"expression": "x", "box_index": 9}], "box_index"),
    ],
)
def test_check_row_names_the_field(field: str, value: object, match: str) -> None:
    row = _rows(1)[0]
    row[field] = value
    with pytest.raises(RowError, match=match) as info:
        check_row(row)
    assert info.value.field.startswith(field)
    assert info.value.row_id == row["id"]


def test_arrow_schema_types() -> None:
    assert SCHEMA.field("width").type == pa.int32()
    assert SCHEMA.field("captions").type == pa.list_(pa.string())
    assert SCHEMA.field("boxes").type.value_type.field("x0").type == pa.float32()


def test_build_rejects_wrong_column_type_naming_the_field(tmp_path: Path) -> None:
    from lgvq_data.build import BadInputError, build_shards

    rows = _rows(3)
    rows[1]["width"] = "16"
    rows[1]["_origin"] = "input.jsonl:2"
    with pytest.raises(
        BadInputError, match=r"input.jsonl:2, row .*-0000001: field 'width': expected a positive int"
    ):
        build_shards(iter([dict(r) for r in rows]), tmp_path / "out", source="test")
    assert not (tmp_path / "out").exists()
    out = build_shards(iter(rows), tmp_path / "out", source="test", on_error="skip")
    rejects = json.loads((out / "rejects.json").read_text())
    assert rejects["rejects"] == [
        {
            "file": "input.jsonl:2",
            "row": rows[1]["id"],
            "reason": "field 'width': expected a positive int, got '16'",
        }
    ]
    assert read_manifest(out)["total_rows"] == 2

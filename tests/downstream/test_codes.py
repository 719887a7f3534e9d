"""Code shards: a frozen tiny tokenizer turns tiny synthetic lgvq-data shards into code shards, read back by
``CodeShardSet``; resumability, refusals and the CLI, all on real components."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import pyarrow as pa
import pytest
import torch
from PIL import Image

from lgvq_core.checksum import file_sha256
from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig
from lgvq_core.models import builders
from lgvq_core.models.tokenizer import VQTokenizer
from lgvq_core.quantizers.vqct_vocabulary import WordCodebookSpec
from lgvq_data.build import build_shards
from lgvq_data.dataset import ShardDataset, collate
from lgvq_data.schema import COL_IMAGE, SCHEMA
from lgvq_data.shards import ShardSet, read_manifest, read_shard
from lgvq_data.sources import synthetic
from lgvq_data.transforms import decode_image
from lgvq_downstream.cli import main
from lgvq_downstream.codes import (
    BadImageError,
    CodeShardError,
    CodeShardSet,
    TokenizerMismatchError,
    collate_codes,
    config_sha256,
    encode_shards,
    index_type,
    load_code_manifest,
)

torch.set_num_threads(1)

N_ROWS, ROWS_PER_SHARD, STORED_SIDE, SIDE = 12, 5, 20, 16
SHARD_NAMES = ["shard-00000.arrow", "shard-00001.arrow", "shard-00002.arrow"]
CODE_COLUMNS = {"indices", "grid_h", "grid_w", "adjective_0", "adjective_1", "noun"}
LOSS = LossConfig(perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1, disc_channels=8)


def _encoder(ch_mult: tuple[int, ...] = (1, 2)) -> EncoderConfig:
    return EncoderConfig(
        resolution=SIDE,
        ch=8,
        ch_mult=ch_mult,
        num_res_blocks=1,
        attn_resolutions=(),
        z_channels=8,
        norm_groups=4,
    )


def _vq(seed: int = 0, codebook_size: int = 32, ch_mult: tuple[int, ...] = (1, 2)) -> VQTokenizer:
    torch.manual_seed(seed)
    quantizer = QuantizerConfig(kind="vq", codebook_size=codebook_size, embed_dim=8)
    model = builders.vqgan(encoder=_encoder(ch_mult), quantizer=quantizer, loss=LOSS)
    with torch.no_grad():  # spread the codes so an untrained encoder selects many of them
        model.quantizer.codebook.normal_(std=0.15)
    return model.eval()


def _save(model: VQTokenizer, folder: Path) -> Path:
    model.save_pretrained(folder)
    return folder


def _widen(row: dict, width: int) -> dict:
    """The row with its image, mask and boxes stretched horizontally to ``width`` (a non-square image, so
    that resize + center crop matter)."""
    image = decode_image(row[COL_IMAGE]).resize((width, row["height"]), Image.BILINEAR)
    scale = width / row["width"]
    row = {**row, COL_IMAGE: _png(image), "width": width}
    if row.get("mask") is not None:
        mask = decode_image(row["mask"], mode="L").resize((width, row["height"]), Image.NEAREST)
        row["mask"] = _png(mask)
    if row.get("boxes"):
        row["boxes"] = [{**b, "x0": b["x0"] * scale, "x1": b["x1"] * scale} for b in row["boxes"]]
    return row


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 synthetic scenes (train/val/test, boxes, masks, qa, refs), every third one 28×20 px, the others
    20×20, in shards of 5, 5, 2 rows."""
    rows = list(synthetic.records(N_ROWS, image_size=STORED_SIDE, seed=3, val_fraction=0.25))
    rows = [_widen(row, 28) if i % 3 == 0 else row for i, row in enumerate(rows)]
    out = tmp_path_factory.mktemp("source") / "shards"
    return build_shards(rows, out, source="synthetic", rows_per_shard=ROWS_PER_SHARD)


@pytest.fixture(scope="module")
def vq_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _save(_vq(), tmp_path_factory.mktemp("tok") / "vq")


@pytest.fixture(scope="module")
def encoded(shards: Path, vq_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("codes") / "vq"
    encode_shards(vq_dir, shards, out, batch_size=4, progress=False)
    return out


def _stats(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_mtime_ns, p.stat().st_ino) for p in sorted(folder.glob("*.arrow"))}


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if ".tmp" in p.name)


# ---------------------------------------------------------------------------------------------- round trip


def test_codes_decode_to_the_tokenizers_own_reconstruction(shards: Path, vq_dir: Path, encoded: Path) -> None:
    model = VQTokenizer.from_pretrained(vq_dir).eval()
    codes = CodeShardSet(encoded)
    assert len(codes) == N_ROWS
    indices = torch.stack([codes[i]["indices"] for i in range(len(codes))])
    assert indices.dtype == torch.int64 and indices.shape == (N_ROWS, 8, 8)
    assert indices.unique().numel() > 4, "the test tokenizer should use many codes"

    # Evaluation preprocessing (lgvq_data.ShardDataset: resize + center crop, no flip) of the same rows.
    images = collate(
        [ShardDataset(shards, None, image_size=SIDE, annotations=False)[i] for i in range(N_ROWS)]
    )
    with torch.no_grad():
        reconstruction = model(images["images"]).reconstruction
        decoded = model.decode(indices)
    assert torch.equal(indices, model.encode(images["images"]))
    torch.testing.assert_close(decoded, reconstruction, atol=1e-5, rtol=1e-5)


def test_manifest_records_tokenizer_preprocessing_and_sources(
    shards: Path, vq_dir: Path, encoded: Path
) -> None:
    manifest = load_code_manifest(encoded, require_complete=True)
    model = VQTokenizer.from_pretrained(vq_dir)
    tok = manifest.tokenizer
    assert (tok.base, tok.grid, tok.codebook_size, tok.image_size) == ("vqgan", (8, 8), 32, SIDE)
    assert tok.config_sha256 == config_sha256(model)
    assert tok.weights_sha256 == file_sha256(vq_dir / "model.safetensors")
    assert tok.vqct is None
    pre = manifest.preprocessing
    assert (pre["image_size"], pre["crop"], pre["hflip"], pre["resize"]) == (SIDE, "center", False, "shorter")
    source = read_manifest(shards)
    assert [(e.name, e.source.name, e.source.sha256, e.source.rows) for e in manifest.shards] == [
        (s["name"], s["name"], s["sha256"], s["rows"]) for s in source["shards"]
    ]
    assert manifest.splits == source["splits"] and manifest.total_rows == N_ROWS
    assert all(file_sha256(encoded / e.name) == e.sha256 for e in manifest.shards)
    assert {"lgvq-core", "lgvq-data", "lgvq-downstream", "torch"} <= set(manifest.versions)
    on_disk = json.loads((encoded / "manifest.json").read_text())
    assert on_disk["format"] == "lgvq-code-shards" and on_disk["complete"] is True


def test_annotations_are_carried_over_unchanged(shards: Path, encoded: Path) -> None:
    for name in SHARD_NAMES:
        code_table = read_shard(encoded / name)
        source_table = read_shard(shards / name)
        assert code_table.schema.field("indices").type == pa.list_(pa.int16())
        carried = code_table.drop_columns(sorted(CODE_COLUMNS & set(code_table.column_names)))
        assert carried.equals(source_table.drop_columns([COL_IMAGE]), check_metadata=False)
    source = ShardSet.open(shards)
    codes = CodeShardSet(encoded)
    wanted = [n for n in SCHEMA.names if n != COL_IMAGE]
    assert sorted(codes.columns) == sorted(wanted)
    rows = [codes[i] for i in range(len(codes))]
    assert [{k: r[k] for k in wanted} for r in rows] == list(source.iter_rows(tuple(wanted)))
    assert any(r["boxes"] for r in rows) and any(r["qa"] for r in rows) and any(r["mask"] for r in rows)

    val = CodeShardSet(encoded, split="val")
    assert [val[i]["id"] for i in range(len(val))] == [
        source.row(i)["id"] for i in source.split_indices("val")
    ]
    batch = collate_codes([val[0], val[1]])
    assert batch["indices"].shape == (2, 8, 8) and batch["split"] == ["val", "val"]


# ---------------------------------------------------------------------------------------------- resume


def test_finished_shards_are_not_redone_and_missing_ones_are(
    shards: Path, vq_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "codes"
    encode_shards(vq_dir, shards, out, batch_size=8, progress=False)
    first = _stats(out)
    digests = {e.name: e.sha256 for e in load_code_manifest(out).shards}
    assert sorted(first) == SHARD_NAMES

    encode_shards(vq_dir, shards, out, batch_size=8, progress=False)
    assert _stats(out) == first, "a second run rewrote finished shards"

    (out / SHARD_NAMES[1]).unlink()
    (out / SHARD_NAMES[2]).write_bytes(b"truncated")
    manifest = encode_shards(vq_dir, shards, out, batch_size=8, progress=False)
    again = _stats(out)
    assert again[SHARD_NAMES[0]] == first[SHARD_NAMES[0]]
    assert again[SHARD_NAMES[1]] != first[SHARD_NAMES[1]] and again[SHARD_NAMES[2]] != first[SHARD_NAMES[2]]
    assert {e.name: e.sha256 for e in manifest.shards} == digests  # deterministic re-encode
    assert manifest.complete and _leftovers(out) == []


# ---------------------------------------------------------------------------------------------- refusals


def test_mismatched_tokenizer_is_refused_naming_both_values(
    shards: Path, vq_dir: Path, encoded: Path, tmp_path: Path
) -> None:
    other = _save(_vq(codebook_size=64, ch_mult=(1, 2, 2)), tmp_path / "other")
    before = _stats(encoded)
    with pytest.raises(TokenizerMismatchError) as info:
        encode_shards(other, shards, encoded, progress=False)
    message = str(info.value)
    assert "grid: code shards 8×8, tokenizer 4×4" in message
    assert "codebook_size: code shards 32, tokenizer 64" in message
    assert _stats(encoded) == before

    codes = CodeShardSet(encoded)
    codes.assert_matches(VQTokenizer.from_pretrained(vq_dir))
    codes.assert_matches(vq_dir)
    with pytest.raises(TokenizerMismatchError, match="codebook_size: code shards 32, tokenizer 64"):
        codes.assert_matches(VQTokenizer.from_pretrained(other))
    retrained = _save(_vq(seed=1), tmp_path / "retrained")  # same config, other weights
    with pytest.raises(TokenizerMismatchError, match="weights_sha256: code shards [0-9a-f]{64}, tokenizer"):
        codes.assert_matches(retrained)


def test_corrupt_image_names_file_row_and_field_and_leaves_no_partial_shard(
    vq_dir: Path, tmp_path: Path
) -> None:
    rows = list(synthetic.records(8, image_size=STORED_SIDE, seed=5))
    rows[6][COL_IMAGE] = b"\x89PNG\r\n\x1a\n not a png"
    bad_id = rows[6]["id"]
    source = build_shards(rows, tmp_path / "bad", source="synthetic", rows_per_shard=ROWS_PER_SHARD)
    out = tmp_path / "codes"
    with pytest.raises(BadImageError) as info:
        encode_shards(vq_dir, source, out, batch_size=4, progress=False)
    message = str(info.value)
    assert str(source / "shard-00001.arrow") in message
    assert "row 1" in message and repr(bad_id) in message and "field 'image'" in message
    assert sorted(p.name for p in out.glob("*.arrow")) == ["shard-00000.arrow"]
    assert _leftovers(out) == []
    manifest = load_code_manifest(out)
    assert not manifest.complete and [e.name for e in manifest.shards] == ["shard-00000.arrow"]
    with pytest.raises(CodeShardError, match="incomplete"):
        CodeShardSet(out)


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_encodes_a_pipeline_run_folder_and_reports_bad_input_on_one_line(
    shards: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = tmp_path / "models" / "vqgan-off-s0"  # the layout pipelines/train.py writes
    _save(_vq(), run / "base")
    (run / "run.json").write_text(json.dumps({"base": "vqgan", "lg": False, "image_size": 24}))
    out = tmp_path / "codes"
    args = ["codes", "--tokenizer", str(run), "--shards", str(shards), "--out", str(out), "--no-progress"]
    assert main([*args, "--batch-size", "8", "--device", "cpu"]) == 0
    codes = CodeShardSet(out)
    assert len(codes) == N_ROWS and codes.grid == (12, 12) and codes[0]["indices"].shape == (12, 12)
    assert codes.tokenizer.image_size == 24 and codes.tokenizer.path == str((run / "base").absolute())
    capsys.readouterr()

    missing = ["codes", "--tokenizer", str(run), "--shards", str(tmp_path / "nope"), "--out", str(out)]
    assert main(missing) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("lgvq-downstream codes: error:") and "nope" in err and len(err.splitlines()) == 1

    assert main(["codes", "--tokenizer", str(tmp_path), "--shards", str(shards), "--out", str(out)]) == 1
    err = capsys.readouterr().err.strip()
    assert "no tokenizer found" in err and len(err.splitlines()) == 1


# ---------------------------------------------------------------------------------------------- VQCT


def test_vqct_codes_store_unpacked_adjective_and_noun_ids(shards: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = WordCodebookSpec(
        adjectives=["red", "blue", "green", "large"],
        nouns=["circle", "square", "star"],
        adjective_vectors=torch.randn(4, 6),
        noun_vectors=torch.randn(3, 6),
        cooccurrence=torch.tensor([[2.0, 0, 1], [0, 3, 0], [1, 1, 0], [0, 0, 2]]),
    )
    model = builders.vqct(
        spec=spec,
        encoder=_encoder(),
        quantizer=QuantizerConfig(kind="vqct", codebook_size=32, embed_dim=8),
        loss=LOSS,
    ).eval()
    folder = _save(model, tmp_path / "vqct")
    out = tmp_path / "codes"
    manifest = encode_shards(folder, shards, out, batch_size=6, progress=False)
    assert manifest.tokenizer.vqct == {"num_adjectives": 4, "num_nouns": 3, "topk": 2}
    assert manifest.codebook_size == 4**2 * 3

    table = read_shard(out / SHARD_NAMES[0])
    for name in ("adjective_0", "adjective_1", "noun"):
        assert table.schema.field(name).type == pa.list_(pa.int16())
    codes = CodeShardSet(out)
    sample = codes[0]
    assert sample["adjectives"].shape == (8, 8, 2) and sample["nouns"].shape == (8, 8)
    adjectives, nouns = model.quantizer.split_tokens(sample["indices"])
    assert torch.equal(sample["adjectives"], adjectives) and torch.equal(sample["nouns"], nouns)
    assert torch.equal(model.quantizer.pack_tokens(sample["adjectives"], sample["nouns"]), sample["indices"])
    flat_nouns = torch.tensor(table.column("noun")[0].as_py()).view(8, 8)
    assert torch.equal(flat_nouns, nouns)

    images = collate([ShardDataset(shards, None, image_size=SIDE, annotations=False)[i] for i in range(4)])
    indices = torch.stack([codes[i]["indices"] for i in range(4)])
    with torch.no_grad():
        torch.testing.assert_close(model.decode(indices), model(images["images"]).reconstruction)


def test_index_type_widens_with_the_codebook() -> None:
    assert index_type(32767) == pa.int16()
    assert index_type(32768) == pa.int32()
    assert index_type(2**31 - 1) == pa.int32()
    assert index_type(2**31) == pa.int64()


def test_reader_rejects_a_shard_edited_after_writing(encoded: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy"
    copy.mkdir()
    for path in encoded.iterdir():
        (copy / path.name).write_bytes(path.read_bytes())
    assert len(CodeShardSet(copy, verify=True)) == N_ROWS
    table = read_shard(copy / SHARD_NAMES[2])  # memory-mapped: write the edit beside it, then rename
    with pa.OSFile(str(tmp_path / "edited"), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table.slice(0, 1))
    os.replace(tmp_path / "edited", copy / SHARD_NAMES[2])
    with pytest.raises(CodeShardError, match="sha256"):
        CodeShardSet(copy, verify=True)
    with pytest.raises(CodeShardError, match="1 rows != manifest 2"):
        CodeShardSet(copy)
    assert os.path.exists(copy / "manifest.json")

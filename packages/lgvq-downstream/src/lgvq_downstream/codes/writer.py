"""Frozen tokenizer + lgvq-data shards → code shards (one per source shard) + ``manifest.json``.

Images are preprocessed as the tokenizer evaluation does (``lgvq_data.transforms.ImageTransform`` at the
tokenizer's image size: resize the shorter side, center crop, no flip; float [-1, 1]) and encoded in batches
under ``torch.no_grad``.

Resumable: a source shard whose code shard is already listed in the output manifest (same source sha256,
output file present with its recorded sha256) is skipped; the manifest is rewritten after every shard.
Atomic: each shard and the manifest are written to a temporary file in the output folder, then renamed
(``os.replace``).
A tokenizer that differs from the one recorded in an existing output manifest is refused.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import torch
from tqdm import tqdm

from lgvq_core.checksum import file_sha256
from lgvq_data.schema import COL_ID, COL_IMAGE, COL_SPLIT
from lgvq_data.shards import read_manifest, read_shard
from lgvq_data.transforms import ImageTransform, decode_image, images_to_batch
from lgvq_downstream.codes.errors import BadImageError, CodeShardError, TokenizerMismatchError
from lgvq_downstream.codes.manifest import (
    CODE_MANIFEST_NAME,
    CodeManifest,
    CodeShardEntry,
    SourceShard,
    load_code_manifest,
    tokenizer_differences,
    write_code_manifest,
)
from lgvq_downstream.codes.schema import (
    COL_GRID_H,
    COL_GRID_W,
    COL_INDICES,
    COL_NOUN,
    DROPPED_COLUMNS,
    adjective_columns,
    code_schema,
)
from lgvq_downstream.codes.tokenizer_folder import LoadedTokenizer, TokenizerInfo, load_tokenizer

logger = logging.getLogger(__name__)

_TMP_MARK = ".tmp-"


def preprocessing_for(info: TokenizerInfo) -> ImageTransform:
    """The evaluation preprocessing at the tokenizer's image size: shorter-side resize, center crop, no
    flip."""
    return ImageTransform(size=info.image_size, resize="shorter", crop="center", hflip=False)


def describe_preprocessing(transform: ImageTransform) -> dict[str, Any]:
    """JSON-able record of the preprocessing (stored in the manifest)."""
    return {
        **asdict(transform),
        "image_size": transform.size,
        "interpolation": "bilinear",
        "value_range": [-1.0, 1.0],
        "decode": "RGB",
        "implementation": "lgvq_data.transforms.ImageTransform",
    }


def library_versions() -> dict[str, str | None]:
    """Versions of the lgvq packages and of torch / pyarrow used to write the codes."""
    import lgvq_core
    import lgvq_data
    import lgvq_downstream

    return {
        "lgvq-core": lgvq_core.__version__,
        "lgvq-data": lgvq_data.__version__,
        "lgvq-downstream": lgvq_downstream.__version__,
        "torch": torch.__version__,
        "pyarrow": pa.__version__,
    }


def _write_table_atomic(table: pa.Table, path: Path) -> None:
    """Arrow IPC file at ``path`` through a temporary file in the same folder and ``os.replace``."""
    tmp = path.with_name(f".{path.name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
    try:
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table, max_chunksize=max(1, table.num_rows))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _remove_stale_temporaries(out: Path) -> None:
    for stale in out.glob(f".*{_TMP_MARK}*"):
        logger.warning("removing leftover temporary file %s", stale)
        stale.unlink(missing_ok=True)


def _flat_list_array(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """n×m integer array → Arrow ``list<value_type>`` array of n rows of m values."""
    n, m = values.shape
    if n * m >= 2**31:
        raise CodeShardError(f"{n}×{m} tokens do not fit in one shard's list column; use smaller shards")
    offsets = pa.array(np.arange(0, n * m + 1, m, dtype=np.int32), type=pa.int32())
    flat = pa.array(values.reshape(-1).astype(value_type.to_pandas_dtype(), copy=False), type=value_type)
    return pa.ListArray.from_arrays(offsets, flat)


class _Encoder:
    """Encodes one source shard at a time with a frozen tokenizer (see module docstring)."""

    def __init__(
        self, loaded: LoadedTokenizer, transform: ImageTransform, batch_size: int, device: torch.device
    ) -> None:
        self.model = loaded.model
        self.info = loaded.info
        self.transform = transform
        self.batch_size = batch_size
        self.device = device

    def _image(self, data: Any, file: Path, row: int, row_id: str) -> Any:
        if data is None:
            raise BadImageError(str(file), row, row_id, COL_IMAGE, "missing image bytes")
        try:
            return self.transform(decode_image(data)).image
        except Exception as err:  # PIL raises many types for corrupt data
            raise BadImageError(
                str(file), row, row_id, COL_IMAGE, f"cannot decode image ({type(err).__name__}: {err})"
            ) from None

    @torch.no_grad()
    def codes(self, table: pa.Table, file: Path, progress: tqdm) -> np.ndarray:
        """Token grids of every row of ``table``: int64 n×(h·w), row-major."""
        h, w = self.info.grid
        images = table.column(COL_IMAGE).combine_chunks()
        ids = table.column(COL_ID).combine_chunks()
        out = np.empty((table.num_rows, h * w), dtype=np.int64)
        for start in range(0, table.num_rows, self.batch_size):
            stop = min(start + self.batch_size, table.num_rows)
            pictures = [
                self._image(images[i].as_py(), file, i, str(ids[i].as_py())) for i in range(start, stop)
            ]
            batch = images_to_batch(pictures).to(self.device)
            indices = self.model.encode(batch)  # B×h×w int64
            if tuple(indices.shape[1:]) != (h, w):
                raise CodeShardError(
                    f"{file}: the tokenizer produced a {indices.shape[1]}×{indices.shape[2]} grid, "
                    f"expected {h}×{w}"
                )
            out[start:stop] = indices.reshape(stop - start, h * w).cpu().numpy()
            progress.update(stop - start)
        return out

    def code_table(self, table: pa.Table, codes: np.ndarray) -> pa.Table:
        """The source table without ``image`` plus the code columns (schema from :func:`code_schema`)."""
        vqct = self.info.vqct
        sizes = (vqct["num_adjectives"], vqct["num_nouns"], vqct["topk"]) if vqct else None
        schema = code_schema(table.schema, self.info.codebook_size, sizes)
        h, w = self.info.grid
        n = table.num_rows
        columns: dict[str, Any] = {
            name: table.column(name) for name in table.column_names if name not in DROPPED_COLUMNS
        }
        columns[COL_INDICES] = _flat_list_array(codes, schema.field(COL_INDICES).type.value_type)
        columns[COL_GRID_H] = pa.array(np.full(n, h, dtype=np.int32))
        columns[COL_GRID_W] = pa.array(np.full(n, w, dtype=np.int32))
        if vqct:
            adjectives, nouns = self.model.quantizer.split_tokens(torch.from_numpy(codes))  # n×hw×k, n×hw
            for j, name in enumerate(adjective_columns(vqct["topk"])):
                columns[name] = _flat_list_array(
                    adjectives[..., j].numpy(), schema.field(name).type.value_type
                )
            columns[COL_NOUN] = _flat_list_array(nouns.numpy(), schema.field(COL_NOUN).type.value_type)
        return pa.Table.from_arrays([columns[f.name] for f in schema], schema=schema)


def _intact(path: Path, entry: CodeShardEntry) -> bool:
    return path.is_file() and path.stat().st_size == entry.bytes and file_sha256(path) == entry.sha256


def _check_existing(out: Path, existing: CodeManifest, info: TokenizerInfo, preprocessing: dict) -> None:
    problems = tokenizer_differences(existing.tokenizer, info)
    if problems:
        raise TokenizerMismatchError(
            f"{out}: holds code shards of another tokenizer (pass another --out or remove it): "
            + "; ".join(problems)
        )
    if existing.preprocessing != preprocessing:
        raise TokenizerMismatchError(
            f"{out}: holds code shards made with preprocessing {existing.preprocessing}, "
            f"this run uses {preprocessing}"
        )


def encode_shards(
    tokenizer: str | os.PathLike[str],
    shards: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> CodeManifest:
    """Encode every source shard of ``shards`` with the tokenizer folder ``tokenizer`` into ``out``.

    Args:
        tokenizer: a ``save_pretrained`` folder, a pipeline run folder or an LG folder (tokenizer in
            ``base/``).
        shards: an lgvq-data shard directory (``manifest.json`` + Arrow IPC shards).
        out: output directory (created); may hold a previous, possibly unfinished, run of the same tokenizer.
        batch_size: images per forward pass.
        device: torch device for the encoder.
        progress: show a tqdm bar (images).

    Returns:
        The written (complete) manifest.

    Raises:
        TokenizerMismatchError: ``out`` holds codes of another tokenizer (names both values).
        BadImageError: a source image cannot be decoded (names shard file, row and field).
        CodeShardError / lgvq_data.shards.ShardError: unusable inputs (names the file).
    """
    if batch_size < 1:
        raise CodeShardError(f"batch_size must be >= 1, got {batch_size}")
    source_dir, out_dir = Path(shards), Path(out)
    if source_dir.resolve() == out_dir.resolve():
        raise CodeShardError(f"{out_dir}: the output directory must differ from the source shard directory")
    try:
        torch_device = torch.device(device)
    except RuntimeError as err:
        raise CodeShardError(f"invalid device {device!r} ({err})") from None
    if torch_device.type == "cuda" and not torch.cuda.is_available():
        raise CodeShardError(f"device {device!r} requested but CUDA is not available")
    source_manifest = read_manifest(source_dir)
    loaded = load_tokenizer(tokenizer)
    info = loaded.info
    transform = preprocessing_for(info)
    preprocessing = describe_preprocessing(transform)

    out_dir.mkdir(parents=True, exist_ok=True)
    existing = load_code_manifest(out_dir) if (out_dir / CODE_MANIFEST_NAME).exists() else None
    if existing is not None:
        _check_existing(out_dir, existing, info, preprocessing)
    _remove_stale_temporaries(out_dir)

    previous = {entry.name: entry for entry in existing.shards} if existing else {}
    done: dict[str, CodeShardEntry] = {}
    todo: list[tuple[dict[str, Any], str]] = []
    for src in source_manifest["shards"]:
        path = source_dir / src["name"]
        if not path.is_file():
            raise CodeShardError(f"{path}: source shard listed in the manifest is missing")
        digest = file_sha256(path)
        if src.get("sha256") and digest != src["sha256"]:
            raise CodeShardError(f"{path}: sha256 {digest} != source manifest {src['sha256']}")
        entry = previous.get(src["name"])
        if entry is not None and entry.source.sha256 == digest and _intact(out_dir / entry.name, entry):
            done[src["name"]] = entry
            logger.info("%s: already encoded, skipped", entry.name)
        else:
            todo.append((src, digest))
    order = [src["name"] for src in source_manifest["shards"]]
    for name in set(previous) - set(order):
        logger.warning("%s: its source shard is gone; removing it", out_dir / name)
        (out_dir / name).unlink(missing_ok=True)

    manifest = CodeManifest(
        tokenizer=info,
        preprocessing=preprocessing,
        source={
            "dir": str(source_dir.absolute()),
            "schema_version": source_manifest["schema_version"],
            "shards": len(order),
        },
        shards=[done[name] for name in order if name in done],
        complete=not todo,
        versions=library_versions(),
        root=out_dir,
    )
    write_code_manifest(out_dir, manifest)
    if not todo:
        logger.info("%s: all %d shards already encoded", out_dir, len(order))
        return manifest

    loaded.model.to(torch_device)
    encoder = _Encoder(loaded, transform, batch_size, torch_device)
    logger.info(
        "encoding %d of %d shards from %s with %s (%s, grid %d×%d, %d codes) into %s",
        len(todo),
        len(order),
        source_dir,
        loaded.folder,
        info.base,
        *info.grid,
        info.codebook_size,
        out_dir,
    )
    total = sum(int(src["rows"]) for src, _ in todo)
    with tqdm(total=total, disable=not progress, desc="codes", unit="img") as bar:
        for src, digest in todo:
            path = source_dir / src["name"]
            table = read_shard(path)
            codes = encoder.codes(table, path, bar)
            target = out_dir / src["name"]
            _write_table_atomic(encoder.code_table(table, codes), target)
            splits = Counter(table.column(COL_SPLIT).to_pylist())
            done[src["name"]] = CodeShardEntry(
                name=src["name"],
                rows=table.num_rows,
                bytes=target.stat().st_size,
                sha256=file_sha256(target),
                splits=dict(sorted(splits.items())),
                source=SourceShard(name=src["name"], sha256=digest, rows=table.num_rows),
            )
            manifest.shards = [done[name] for name in order if name in done]
            manifest.complete = len(done) == len(order)
            write_code_manifest(out_dir, manifest)
            logger.info("%s: %d rows encoded", target, table.num_rows)
    return manifest

"""Validate a shard directory with a great-expectations suite built in code (ephemeral context, no files).

Checks (each one a :class:`CheckResult` in the report):

- manifest: present and readable; per shard: file exists, sha256 and row count match the manifest, the file
  reads as Arrow IPC, the schema is v1 (names and types);
- great-expectations, over all rows of all readable shards: ``id`` not null and unique; ``split`` in
  train/val/test; ``width``/``height`` ≥ 1; ≥1 caption per row, each non-empty, valid UTF-8 and at most
  ``max_caption_chars`` long; the image decodes and its size equals ``width``×``height``; boxes lie inside the
  image; refs point at existing boxes; the mask decodes to the image size.

Per-row facts GE cannot compute from Arrow cells (does the PNG decode, is it the stated size, ...) are
computed first as derived DataFrame columns (``image_decodes``, ``image_matches_size``, ...) and then checked
by GE expectations, so GE reports them with the shard and row of every failing row.

great-expectations is imported lazily here only (extra ``lgvq-data[validate]``).
"""

from __future__ import annotations

import io
import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from PIL import Image

from lgvq_data.schema import (
    COL_BOXES,
    COL_CAPTIONS,
    COL_HEIGHT,
    COL_ID,
    COL_IMAGE,
    COL_MASK,
    COL_REFS,
    COL_SPLIT,
    COL_WIDTH,
    SCHEMA,
    SPLITS,
)
from lgvq_data.shards import ShardError, read_manifest, read_shard, verify_manifest

logger = logging.getLogger(__name__)

DEFAULT_MAX_CAPTION_CHARS = 1000
_SHARD, _ROW = "_shard", "_row"

# derived column -> (schema column it describes, what a failing row means)
_DERIVED: dict[str, tuple[str, str]] = {
    "n_captions": (COL_CAPTIONS, "fewer than one caption"),
    "captions_utf8": (COL_CAPTIONS, "caption is not valid UTF-8"),
    "min_caption_chars": (COL_CAPTIONS, "empty caption"),
    "max_caption_chars": (COL_CAPTIONS, "caption longer than the bound"),
    "image_decodes": (COL_IMAGE, "image bytes do not decode"),
    "image_matches_size": (COL_IMAGE, "decoded size differs from width/height"),
    "boxes_inside": (COL_BOXES, "box outside the image or empty"),
    "refs_valid": (COL_REFS, "ref box_index does not point at a box"),
    "mask_matches_size": (COL_MASK, "mask does not decode to the image size"),
}


@dataclass
class Failure:
    """One failing row (or shard, when ``row`` is None)."""

    shard: str | None
    row: int | None
    column: str | None
    value: Any = None
    reason: str = ""
    id: str | None = None


@dataclass
class CheckResult:
    """Outcome of one check: its name, the GE expectation type (or ``manifest``), counts and examples."""

    check: str
    expectation: str
    column: str | None
    success: bool
    element_count: int = 0
    unexpected_count: int = 0
    failures: list[Failure] = field(default_factory=list)


@dataclass
class ValidationReport:
    """All checks of one shard directory. ``success`` is True only when every check passed."""

    shard_dir: str
    total_rows: int
    checks: list[CheckResult]

    @property
    def success(self) -> bool:
        return all(c.success for c in self.checks)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [c for c in self.checks if not c.success]

    def to_dict(self) -> dict[str, Any]:
        return {
            "shard_dir": self.shard_dir,
            "success": self.success,
            "total_rows": self.total_rows,
            "summary": {"checks": len(self.checks), "failed": len(self.failed_checks)},
            "checks": [asdict(c) for c in self.checks],
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The report as JSON text; also written (atomically) to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, default=_json_default)
        if path is not None:
            from lgvq_data.shards import write_json_atomic

            write_json_atomic(path, json.loads(text))
        return text


def _json_default(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return str(value)


def _schema_difference(schema: pa.Schema) -> list[tuple[str, str]]:
    problems = []
    for expected in SCHEMA:
        if expected.name not in schema.names:
            problems.append((expected.name, "missing column"))
        elif not schema.field(expected.name).type.equals(expected.type):
            problems.append((expected.name, f"type {schema.field(expected.name).type} != {expected.type}"))
    for name in schema.names:
        if name not in SCHEMA.names:
            problems.append((name, "unknown column"))
    return problems


def _decoded_size(data: bytes | None) -> tuple[tuple[int, int] | None, str, str]:
    """(size, mode, error) of image bytes after a full decode."""
    if data is None:
        return None, "", "null"
    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size, image.mode, ""
    except Exception as err:  # noqa: BLE001 - any decoder error means "does not decode"
        return None, "", f"{type(err).__name__}: {err}"


def _derived_rows(table: pa.Table, shard: str, max_caption_chars: int) -> tuple[list[dict[str, Any]], dict]:
    """Per-row derived facts of one shard, plus {(shard, row, derived column): reason} for failures."""
    reasons: dict[tuple[str, int, str], str] = {}
    captions = table.column(COL_CAPTIONS).combine_chunks()
    offsets = captions.offsets.to_numpy()
    caption_bytes = captions.values.cast(pa.binary()).to_pylist()
    ids = table.column(COL_ID).to_pylist()
    splits = table.column(COL_SPLIT).to_pylist()
    widths = table.column(COL_WIDTH).to_pylist()
    heights = table.column(COL_HEIGHT).to_pylist()
    boxes_col = table.column(COL_BOXES)
    refs_col = table.column(COL_REFS)
    images = table.column(COL_IMAGE)
    masks = table.column(COL_MASK)
    rows = []
    for i in range(table.num_rows):
        width, height = widths[i], heights[i]
        texts, utf8_ok = [], True
        for raw in caption_bytes[offsets[i] : offsets[i + 1]] if captions[i].is_valid else []:
            try:
                texts.append((raw or b"").decode("utf-8"))
            except UnicodeDecodeError as err:
                utf8_ok = False
                reasons[(shard, i, "captions_utf8")] = f"caption {raw!r}: {err.reason} at byte {err.start}"
                texts.append(raw.decode("utf-8", errors="replace"))
        lengths = [len(t.strip()) for t in texts]
        size, _, error = _decoded_size(images[i].as_py())
        if error:
            reasons[(shard, i, "image_decodes")] = error
        elif size != (width, height):
            reasons[(shard, i, "image_matches_size")] = (
                f"decoded {size[0]}×{size[1]}, stored {width}×{height}"
            )
        boxes = boxes_col[i].as_py() or []
        inside = True
        for k, box in enumerate(boxes):
            coords = [box.get(c) for c in ("x0", "y0", "x1", "y1")]
            if any(c is None for c in coords) or not (
                0 <= coords[0] < coords[2] <= width + 1e-3 and 0 <= coords[1] < coords[3] <= height + 1e-3
            ):
                inside = False
                reasons[(shard, i, "boxes_inside")] = f"box {k} {coords} outside {width}×{height}"
                break
        refs = refs_col[i].as_py() or []
        refs_ok = all(r.get("box_index") is not None and 0 <= r["box_index"] < len(boxes) for r in refs)
        mask_bytes = masks[i].as_py()
        mask_ok = True
        if mask_bytes is not None:
            mask_size, mask_mode, mask_error = _decoded_size(mask_bytes)
            mask_ok = not mask_error and mask_size == (width, height) and mask_mode in ("L", "P", "I", "I;16")
            if not mask_ok:
                reasons[(shard, i, "mask_matches_size")] = mask_error or f"mask {mask_size} mode {mask_mode}"
        rows.append(
            {
                _SHARD: shard,
                _ROW: i,
                COL_ID: ids[i],
                COL_SPLIT: splits[i],
                COL_WIDTH: width,
                COL_HEIGHT: height,
                "n_captions": len(texts),
                "captions_utf8": utf8_ok,
                "min_caption_chars": min(lengths) if lengths else 0,
                "max_caption_chars": max(lengths) if lengths else 0,
                "image_decodes": not error,
                "image_matches_size": bool(error) or size == (width, height),  # undecodable: reported once
                "boxes_inside": inside,
                "refs_valid": refs_ok,
                "mask_matches_size": mask_ok,
            }
        )
    return rows, reasons


def _expectations(max_caption_chars: int) -> list[Any]:
    import great_expectations.expectations as gxe

    flags = [
        name for name in _DERIVED if name not in ("n_captions", "min_caption_chars", "max_caption_chars")
    ]
    return [
        gxe.ExpectColumnValuesToNotBeNull(column=COL_ID),
        gxe.ExpectColumnValuesToBeUnique(column=COL_ID),
        gxe.ExpectColumnValuesToBeInSet(column=COL_SPLIT, value_set=list(SPLITS)),
        gxe.ExpectColumnValuesToBeBetween(column=COL_WIDTH, min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column=COL_HEIGHT, min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="n_captions", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="min_caption_chars", min_value=1),
        gxe.ExpectColumnValuesToBeBetween(column="max_caption_chars", max_value=max_caption_chars),
        *[gxe.ExpectColumnValuesToBeInSet(column=name, value_set=[True]) for name in flags],
    ]


def _run_great_expectations(rows: list[dict[str, Any]], max_caption_chars: int) -> list[Any]:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    try:
        import great_expectations as gx
        import pandas as pd
    except ImportError as err:  # pragma: no cover - depends on the installed extras
        raise ImportError(
            f"lgvq_data.validate needs great-expectations + pandas: pip install 'lgvq-data[validate]' ({err})"
        ) from None
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in [n for n in logging.root.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # GE logs context set-up chatter at INFO
    frame = pd.DataFrame(rows)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch = (
        context.data_sources.add_pandas("shards")
        .add_dataframe_asset("rows")
        .add_batch_definition_whole_dataframe("all")
        .get_batch(batch_parameters={"dataframe": frame})
    )
    suite = gx.ExpectationSuite(name="lgvq_shards_v1", expectations=_expectations(max_caption_chars))
    result = batch.validate(
        suite,
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": [_SHARD, _ROW]},
    )
    return list(result.results)


def validate_shards(
    shard_dir: str | os.PathLike[str],
    max_caption_chars: int = DEFAULT_MAX_CAPTION_CHARS,
    max_examples: int = 50,
) -> ValidationReport:
    """Run every check on ``shard_dir`` and return the report (never raises for bad data)."""
    root = Path(shard_dir)
    checks: list[CheckResult] = []
    try:
        manifest = read_manifest(root)
    except ShardError as err:
        failure = Failure(shard=None, row=None, column=None, reason=str(err))
        return ValidationReport(
            str(root), 0, [CheckResult("manifest_readable", "manifest", None, False, 1, 1, [failure])]
        )
    checks.append(CheckResult("manifest_readable", "manifest", None, True, 1, 0))
    problems = verify_manifest(root)
    shard_names = [entry["name"] for entry in manifest["shards"]]
    for check in ("shard_exists", "sha256_matches", "row_count_matches", "shard_readable"):
        found = [p for p in problems if p.check == check]
        checks.append(
            CheckResult(
                check,
                "manifest",
                None,
                not found,
                len(shard_names),
                len(found),
                [Failure(p.shard, None, None, reason=p.reason) for p in found[:max_examples]],
            )
        )
    rows: list[dict[str, Any]] = []
    reasons: dict[tuple[str, int, str], str] = {}
    schema_failures: list[Failure] = []
    unusable = {p.shard for p in problems if p.check in ("shard_exists", "shard_readable")}
    for name in shard_names:
        if name in unusable:
            continue
        table = read_shard(root / name)
        difference = _schema_difference(table.schema)
        if difference:
            schema_failures.extend(Failure(name, None, column, reason=why) for column, why in difference)
            continue
        shard_rows, shard_reasons = _derived_rows(table, name, max_caption_chars)
        rows.extend(shard_rows)
        reasons.update(shard_reasons)
    checks.append(
        CheckResult(
            "schema_matches_v1",
            "arrow_schema",
            None,
            not schema_failures,
            len(shard_names),
            len({f.shard for f in schema_failures}),
            schema_failures[:max_examples],
        )
    )
    if rows:
        ids_by_location = {(r[_SHARD], r[_ROW]): r[COL_ID] for r in rows}
        for result in _run_great_expectations(rows, max_caption_chars):
            config = result.expectation_config
            column = config.kwargs.get("column")
            schema_column, meaning = _DERIVED.get(column, (column, ""))
            failures = []
            for item in (result.result.get("unexpected_index_list") or [])[:max_examples]:
                location = (item[_SHARD], int(item[_ROW]))
                reason = reasons.get((*location, column), meaning or f"unexpected value for {config.type}")
                failures.append(
                    Failure(
                        location[0],
                        location[1],
                        schema_column,
                        value=item.get(column),
                        reason=reason,
                        id=ids_by_location.get(location),
                    )
                )
            checks.append(
                CheckResult(
                    check=column
                    if column in _DERIVED
                    else f"{column}:{config.type.removeprefix('expect_column_')}",
                    expectation=config.type,
                    column=schema_column,
                    success=bool(result.success),
                    element_count=int(result.result.get("element_count") or 0),
                    unexpected_count=int(result.result.get("unexpected_count") or 0),
                    failures=failures,
                )
            )
    total = sum(entry.get("rows", 0) for entry in manifest["shards"])
    report = ValidationReport(str(root), total, checks)
    for check in report.failed_checks:
        logger.warning("check %s failed: %d unexpected", check.check, check.unexpected_count)
    return report

"""Code shards: a frozen tokenizer's token grids of lgvq-data shards, with every annotation carried over.

- :func:`encode_shards`: tokenizer folder + shard directory → code shards + ``manifest.json`` (resumable,
  atomic, refuses another tokenizer's output directory).
- :class:`CodeShardSet`: torch Dataset over a code-shard directory; :func:`collate_codes` batches it.
- :func:`load_code_manifest` → :class:`CodeManifest` (``assert_matches(tokenizer)``).
"""

from lgvq_downstream.codes.errors import BadImageError, CodeShardError, TokenizerMismatchError
from lgvq_downstream.codes.manifest import (
    CODE_MANIFEST_NAME,
    CodeManifest,
    CodeShardEntry,
    SourceShard,
    load_code_manifest,
)
from lgvq_downstream.codes.reader import CodeShardSet, collate_codes
from lgvq_downstream.codes.schema import (
    COL_GRID_H,
    COL_GRID_W,
    COL_INDICES,
    COL_NOUN,
    adjective_columns,
    code_schema,
    index_type,
)
from lgvq_downstream.codes.tokenizer_folder import (
    TokenizerInfo,
    config_sha256,
    describe_tokenizer,
    load_tokenizer,
)
from lgvq_downstream.codes.writer import encode_shards, preprocessing_for

__all__ = [
    "BadImageError",
    "CODE_MANIFEST_NAME",
    "COL_GRID_H",
    "COL_GRID_W",
    "COL_INDICES",
    "COL_NOUN",
    "CodeManifest",
    "CodeShardEntry",
    "CodeShardError",
    "CodeShardSet",
    "SourceShard",
    "TokenizerInfo",
    "TokenizerMismatchError",
    "adjective_columns",
    "code_schema",
    "collate_codes",
    "config_sha256",
    "describe_tokenizer",
    "encode_shards",
    "index_type",
    "load_code_manifest",
    "load_tokenizer",
    "preprocessing_for",
]

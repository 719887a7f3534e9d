"""Fixtures for the language-guidance tests: real (tiny or shipped) text encoders, built offline."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

WORDS = (
    "a an the small large red blue green yellow circle square triangle star bird cat dog with wings black white "
    "to left right of above below and striped dotted"
).split()


def _write_clip_bpe(directory: Path) -> None:
    """A tiny CLIP BPE vocabulary (characters, every word prefix, whole words) + the merges that build them."""
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
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=32, projection_dim=24, pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
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
    model = BertModel(BertConfig(vocab_size=minilm.vocab_size, hidden_size=32, intermediate_size=64,
                                 num_hidden_layers=2, num_attention_heads=2, max_position_embeddings=64))
    return HFTextEncoder(model, minilm.tokenizer, kind="auto", name="tiny-bert", context_length=12)


BASES = ("vqvae", "vqgan", "cvq", "vqct")


def tiny_tokenizer_config(base: str):
    """A tiny TokenizerConfig (16 px images, 8×8 grid, 32 codes of dim 16; no perceptual net; GAN from step 0)."""
    from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig, TokenizerConfig

    encoder = EncoderConfig(resolution=16, ch=16, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(),
                            z_channels=16, norm_groups=8)
    kind = {"vqvae": "vq", "vqgan": "vq", "cvq": "cvq", "vqct": "vqct"}[base]
    quantizer = QuantizerConfig(kind=kind, codebook_size=32, embed_dim=16)
    if base == "vqvae":
        loss = LossConfig(reconstruction="l1+l2", perceptual_weight=0.0, perceptual_net="none", disc_weight=0.0,
                          adaptive_weight=False)
    else:
        loss = LossConfig(perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1,
                          disc_channels=8)
    return TokenizerConfig(base=base, encoder=encoder, quantizer=quantizer, loss=loss)


def _word_spec():
    """A small VQCT word codebook from a deterministic embedding (hash-seeded vectors)."""
    import zlib

    import torch

    from lgvq_core.quantizers import vqct_vocabulary as vocab

    def embed_words(words: list[str]) -> torch.Tensor:
        rows = []
        for word in words:
            g = torch.Generator().manual_seed(zlib.crc32(word.encode()))
            rows.append(torch.randn(8, generator=g))
        return torch.stack(rows)

    captions = ["a red circle", "a small blue square", "a large green triangle", "a striped red star"]
    return vocab.build_word_codebook_spec(captions, embed_words=embed_words)  # type: ignore[attr-defined]


def make_base(base: str):
    """Build a tiny base tokenizer, skipping the test when that base is not available yet."""
    import torch

    try:
        from lgvq_core.models import builders
    except ImportError as err:  # pragma: no cover - only while the bases are being written
        pytest.skip(f"base builders not available: {err}")
    config = tiny_tokenizer_config(base)
    torch.manual_seed(0)
    try:
        if base == "vqct":
            return builders.vqct(spec=_word_spec(), config=config)
        return builders.build(config)
    except (ImportError, AttributeError) as err:
        pytest.skip(f"base {base!r} not available yet: {err}")


def captioned_batch(count: int = 4, size: int = 16, textured: bool = False):
    """``count`` images with one coloured object each and a matching caption (batch dict of the contract).

    ``textured`` adds a smooth random background so that the images use many different codes.
    """
    import torch

    colours = {"red": (1.0, -1.0, -1.0), "blue": (-1.0, -1.0, 1.0), "green": (-1.0, 1.0, -1.0),
               "yellow": (1.0, 1.0, -1.0)}
    shapes = ["circle", "square", "triangle", "star"]
    images, captions = [], []
    for i in range(count):
        name = list(colours)[i % 4]
        image = torch.full((3, size, size), -0.5)
        half = size // 2
        y, x = (i // 2 % 2) * half, (i % 2) * half
        image[:, y:y + half, x:x + half] = torch.tensor(colours[name]).view(3, 1, 1)
        images.append(image)
        captions.append(f"a {'small' if i % 2 else 'large'} {name} {shapes[i % 4]}")
    stacked = torch.stack(images)
    if textured:
        g = torch.Generator().manual_seed(0)
        noise = torch.rand(count, 3, 4, 4, generator=g) * 2 - 1
        stacked = (0.5 * stacked + 0.5 * torch.nn.functional.interpolate(noise, size=size, mode="bilinear")).clamp(-1, 1)
    return {"images": stacked, "captions": captions, "ids": [str(i) for i in range(count)]}

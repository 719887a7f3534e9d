"""``lgvq-core`` command line: inspect checkpoints, encode images to tokens and decode tokens to images.

    lgvq-core info DIR                         # a save_pretrained directory or a training checkpoint
    directory
    lgvq-core encode --model DIR IMAGE.{png,npy} --out TOKENS.npy
    lgvq-core decode --model DIR TOKENS.npy --out IMAGE.{png,npy}

Images: PNG (RGB, resized by nothing: sides must be multiples of the downsampling factor) or .npy float arrays
C×H×W / B×C×H×W in [-1, 1]. Tokens: int64 .npy, h×w or B×h×w.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

__all__ = ["main"]


def _info(path: Path) -> dict:
    if (path / "trainer.json").is_file():
        meta = json.loads((path / "trainer.json").read_text())
        return {
            "kind": "training checkpoint",
            "state": meta["state"],
            "base": (meta.get("model_config") or {}).get("base"),
            "config_hash": meta.get("config_hash"),
            "has_discriminator": meta.get("has_discriminator"),
            "train_config": meta.get("train_config"),
        }
    from lgvq_core.models.tokenizer import VQTokenizer

    tok = VQTokenizer.from_pretrained(path)
    return {
        "kind": "tokenizer",
        "base": tok.config.base,
        "quantizer": tok.config.quantizer.kind,
        "codebook_size": tok.codebook_size,
        "embed_dim": tok.embed_dim,
        "grid_size": list(tok.grid_size),
        "resolution": tok.config.encoder.resolution,
        "downsample_factor": tok.config.encoder.downsample_factor,
        "parameters": sum(p.numel() for p in tok.parameters()),
    }


def _load_images(path: Path) -> torch.Tensor:
    if path.suffix == ".npy":
        array = np.load(path)
        tensor = torch.from_numpy(np.asarray(array, dtype=np.float32))
        return tensor.unsqueeze(0) if tensor.ndim == 3 else tensor
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover
        raise SystemExit("reading PNG needs pillow (pip install pillow), or pass a .npy array") from err
    array = np.asarray(Image.open(path).convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def _save_images(images: torch.Tensor, path: Path) -> None:
    if path.suffix == ".npy":
        np.save(path, images.numpy())
        return
    from PIL import Image

    if images.shape[0] != 1:
        raise SystemExit(f"{path}: PNG output holds one image; got a batch of {images.shape[0]} (use .npy)")
    array = ((images[0].clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lgvq-core", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p_info = sub.add_parser("info", help="describe a tokenizer or training checkpoint directory (JSON)")
    p_info.add_argument("directory", type=Path)
    p_enc = sub.add_parser("encode", help="images → tokens (.npy int64)")
    p_enc.add_argument("--model", type=Path, required=True)
    p_enc.add_argument("input", type=Path)
    p_enc.add_argument("--out", type=Path, required=True)
    p_dec = sub.add_parser("decode", help="tokens → images")
    p_dec.add_argument("--model", type=Path, required=True)
    p_dec.add_argument("input", type=Path)
    p_dec.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "info":
        print(json.dumps(_info(args.directory), indent=2))
        return 0
    from lgvq_core.models.tokenizer import VQTokenizer

    tok = VQTokenizer.from_pretrained(args.model).eval()
    with torch.no_grad():
        if args.command == "encode":
            tokens = tok.encode(_load_images(args.input))
            np.save(args.out, tokens.numpy())
            print(f"{args.out}: tokens {tuple(tokens.shape)} in [0, {tok.codebook_size})")
        else:
            tokens = torch.from_numpy(np.load(args.input).astype(np.int64))
            tokens = tokens.unsqueeze(0) if tokens.ndim == 2 else tokens
            images = tok.decode(tokens)
            _save_images(images, args.out)
            print(f"{args.out}: images {tuple(images.shape)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""CLI wiring of the real-data sources: for each, how to add its arguments and how to build from them."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _common(args: argparse.Namespace) -> dict[str, Any]:
    return {"rows_per_shard": args.rows_per_shard, "on_error": args.on_error, "progress": not args.quiet}


def _root(p: argparse.ArgumentParser, help_text: str) -> None:
    p.add_argument("--root", type=Path, required=True, help=help_text)


def _folder_args(p: argparse.ArgumentParser) -> None:
    _root(p, "image folder")
    p.add_argument(
        "--captions",
        type=Path,
        help=(
            "JSONL or CSV captions file (default: captions.jsonl, captions.csv, metadata.jsonl or "
            "metadata.csv in --root). Per line/row an image key, file_name (HF imagefolder), file or image, "
            "relative to --root, and a caption key, text, caption or captions (a string or a list of "
            "strings); optional id and split"
        ),
    )
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)


def _folder_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import folder

    return folder.build(
        args.out, args.root, args.captions, args.val_fraction, args.test_fraction, **_common(args)
    )


def _cub_args(p: argparse.ArgumentParser) -> None:
    _root(p, "CUB_200_2011 folder (images.txt, train_test_split.txt, images/)")
    p.add_argument("--captions-root", type=Path, help="Reed et al. text_c10 folder (default: looked up)")


def _cub_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import cub

    return cub.build(args.out, args.root, args.captions_root, **_common(args))


def _celeba_args(p: argparse.ArgumentParser) -> None:
    _root(p, "MM-CelebA-HQ folder (CelebA-HQ-img/, celeba-caption/, train|test/filenames.pickle)")
    p.add_argument("--mask-root", type=Path, help="CelebAMask-HQ-mask-anno folder (optional)")


def _celeba_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import celeba_hq

    return celeba_hq.build(args.out, args.root, args.mask_root, **_common(args))


def _coco_args(p: argparse.ArgumentParser) -> None:
    _root(p, "COCO folder (annotations/captions_*2014.json, train2014/, val2014/)")
    p.add_argument(
        "--qa-root", type=Path, help="COCO-QA folder (train/, test/ with img_ids/questions/answers.txt)"
    )
    p.add_argument("--refcoco-root", type=Path, help="RefCOCO folder (refs(unc).p, instances.json)")
    p.add_argument("--folders", nargs="+", default=["train2014", "val2014"], choices=["train2014", "val2014"])
    p.add_argument("--max-images", type=int, help="stop after this many images")


def _coco_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import coco

    return coco.build(
        args.out,
        args.root,
        args.qa_root,
        args.refcoco_root,
        tuple(args.folders),
        args.max_images,
        **_common(args),
    )


def _textcaps_args(p: argparse.ArgumentParser) -> None:
    _root(p, "TextCaps folder (TextCaps_0.1_{train,val}.json + train_images/, or the LG-VQ text layout)")


def _textcaps_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import textcaps

    return textcaps.build(args.out, args.root, **_common(args))


def _fashion_args(p: argparse.ArgumentParser) -> None:
    from lgvq_data.sources.fashion_mnist import DEFAULT_ROOT

    p.add_argument(
        "--root", type=Path, default=DEFAULT_ROOT, help=f"folder of the IDX files (default {DEFAULT_ROOT})"
    )
    p.add_argument("--n", type=int, default=4000)
    p.add_argument("--image-size", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--test-fraction", type=float, default=0.1)


def _fashion_build(args: argparse.Namespace) -> Path:
    from lgvq_data.sources import fashion_mnist

    return fashion_mnist.build(
        args.out,
        args.n,
        args.image_size,
        args.seed,
        args.root,
        val_fraction=args.val_fraction,
        test_fraction=args.test_fraction,
        **_common(args),
    )


CLI_SOURCES: dict[
    str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], Path]]
] = {
    "folder": (_folder_args, _folder_build),
    "cub": (_cub_args, _cub_build),
    "celeba-hq": (_celeba_args, _celeba_build),
    "coco": (_coco_args, _coco_build),
    "textcaps": (_textcaps_args, _textcaps_build),
    "fashion-mnist": (_fashion_args, _fashion_build),
}

"""Per task, what the Ray Train worker and the stage need from lgvq_downstream: the model and the training
examples of the train split (:func:`prepare`), the per-batch loss (the package's ``train_step``), saving and
loading a checkpoint, evaluation on the test split and the examples figure.

The package functions are used as they are; only the loop around ``train_step`` (``ray_task``) is the
pipeline's own, because it checkpoints and resumes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """A fresh task model and its training examples.

    ``dataset``: map-style examples; ``collate``: a list of examples → a batch; ``step_fn(model, batch)`` →
    scalar loss (the package's ``train_step``); ``info``: counts for the training record.
    """

    model: nn.Module
    dataset: Any
    collate: Any
    step_fn: Any
    info: dict[str, Any]


class ModuleView:
    """A task model as the package's ``train_step`` expects it, also when Ray Train wrapped it in
    ``DistributedDataParallel``: calls go through the wrapper (gradients are synchronised), attributes
    (``config``, ``reg_token``, …) come from the model inside."""

    def __init__(self, wrapped: nn.Module) -> None:
        self._wrapped = wrapped
        self._module = getattr(wrapped, "module", wrapped)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._wrapped(*args, **kwargs)

    def parameters(self) -> Any:
        return self._wrapped.parameters()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def codebook_of(run: Path, codes: Any) -> Tensor:
    """K×D code vectors of the run's tokenizer, after checking the code shards were made by it."""
    from lgvq_downstream.codes.tokenizer_folder import load_tokenizer

    codes.assert_matches(run)
    return load_tokenizer(run).model.codebook.detach().float().cpu()


def prepare(task: str, config: Any, codes_dir: Path, run: Path) -> Prepared:
    """The fresh model of ``task`` (``config``: its lgvq_downstream config) for the train split of
    ``codes_dir`` (made by the tokenizer of ``run``), seeded by ``config.train.seed``."""
    from lgvq_downstream.codes import CodeShardSet
    from lgvq_downstream.tasks.common import SkipReport, load_text_tokenizer

    if task == "retrieve":
        raise ValueError("retrieval has no step loop: its probe is fitted by lgvq_core's fit_probe")
    if task == "generate":
        return _prepare_generation(config, codes_dir, run)
    tokenizer = load_text_tokenizer(config.text_encoder)
    codes = CodeShardSet(codes_dir, split="train")
    codebook = codebook_of(run, codes) if config.init_from_codebook else None
    skips = SkipReport(config.train.on_error)
    torch.manual_seed(config.train.seed)
    if task == "caption":
        from lgvq_downstream.tasks import captioning
        from lgvq_downstream.tasks.captioning.data import CaptionBatchCollator, CaptionPairs, collect_images

        model = captioning.build(config, codes, tokenizer, codebook=codebook)
        images = collect_images(codes, skips)
        pairs = CaptionPairs(images, model.vocab, config.max_caption_tokens, skips)
        info = {"images": len(images), "examples": len(pairs), "skipped": skips.to_dict()}
        return Prepared(model, pairs, CaptionBatchCollator(model.vocab.pad_id), captioning.train_step, info)
    if task == "vqa":
        from lgvq_downstream.tasks import vqa
        from lgvq_downstream.tasks.vqa.data import VQABatchCollator, VQAExamples, collect_questions

        model = vqa.build(config, codes, tokenizer, codebook=codebook)
        data = collect_questions(codes, skips, model.vocab.tokenizer, config.max_question_tokens)
        examples = VQAExamples(data, model.vocab, model.answers)
        info = {
            "images": len(data.ids),
            "examples": len(examples),
            "out_of_vocab": examples.out_of_vocab,
            "skipped": skips.to_dict(),
        }
        return Prepared(model, examples, VQABatchCollator(model.vocab.pad_id), vqa.train_step, info)
    if task == "ground":
        from lgvq_downstream.tasks import grounding

        dataset = grounding.GroundingDataset(
            codes, None, tokenizer, max_text_tokens=config.max_text_tokens, on_error=config.train.on_error
        )
        model = grounding.build(config, dataset, codebook=codebook)
        model.mean_train_box.copy_(dataset.mean_box())  # the mean-box baseline (package ``train`` does this)
        collate = functools.partial(grounding.collate_grounding, vocab=model.vocab)
        report = dataset.report()
        info = {"images": report["images"], "examples": len(dataset), "skipped": report["bad_input"]}
        return Prepared(model, dataset, collate, grounding.train_step, info)
    raise ValueError(f"unknown task {task!r}")


def _prepare_generation(config: Any, codes_dir: Path, run: Path) -> Prepared:
    """The code generator of the generation tasks (one model for all four, see ``GenerationConfig``)."""
    from lgvq_downstream.codes import CodeShardSet
    from lgvq_downstream.tasks import generation
    from lgvq_downstream.tasks.common import SkipReport

    codes = CodeShardSet(codes_dir, split="train")
    codebook = codebook_of(run, codes) if config.init_from_codebook else None
    skips = SkipReport(config.train.on_error)
    examples = generation.examples_for(config, codes, skips)
    torch.manual_seed(config.train.seed)
    model = generation.build(config, codes, codebook=codebook, examples=examples)
    info = {"images": len(examples), "examples": len(examples), "skipped": skips.to_dict()}
    return Prepared(model, examples, generation.collate_generation, generation.train_step, info)


def save(task: str, model: nn.Module, folder: Path) -> None:
    """The package checkpoint of a trained task model (``save_pretrained``)."""
    model.save_pretrained(folder)


def load(task: str, folder: Path, device: str = "cpu") -> nn.Module:
    """A task checkpoint written by :func:`save` (for retrieval: an LG or probe folder)."""
    if task == "caption":
        from lgvq_downstream.tasks.captioning import Captioner

        return Captioner.from_pretrained(folder, map_location=device)
    if task == "vqa":
        from lgvq_downstream.tasks.vqa import VQAModel

        return VQAModel.from_pretrained(folder, map_location=device)
    if task == "ground":
        from lgvq_downstream.tasks.grounding import GroundingModel

        return GroundingModel.from_pretrained(folder, map_location=device)
    if task == "retrieve":
        from lgvq_downstream.tasks.retrieval import build

        return build(folder).to(device)
    if task == "generate":
        from lgvq_downstream.tasks.generation import GenerationModel

        return GenerationModel.from_pretrained(folder, map_location=device)
    raise ValueError(f"unknown task {task!r}")


def evaluate(task: str, model: nn.Module, codes_dir: Path, settings: Any, config: Any) -> dict[str, Any]:
    """The package's evaluation of ``model`` on the ``settings.eval_split`` split (test) of ``codes_dir``
    (baseline and shuffled-codes control included). ``settings``: the stage's params subsection; ``config``:
    the task config."""
    from lgvq_downstream.codes import CodeShardSet

    if task == "caption":
        from lgvq_downstream.tasks.captioning import evaluate as run

        return run(
            model,
            CodeShardSet(codes_dir, split=settings.eval_split),
            control_seed=config.train.seed,
            batch_size=settings.eval_batch_size,
        )
    if task == "vqa":
        from lgvq_downstream.tasks.vqa import evaluate as run

        return run(
            model,
            CodeShardSet(codes_dir, split=settings.eval_split),
            wups=settings.wups,
            control_seed=config.train.seed,
            batch_size=settings.eval_batch_size,
        )
    if task == "ground":
        from lgvq_downstream.tasks.grounding import GroundingDataset
        from lgvq_downstream.tasks.grounding import evaluate as run

        dataset = GroundingDataset(
            codes_dir,
            settings.eval_split,
            model.vocab.tokenizer,
            max_text_tokens=model.config.max_text_tokens,
            on_error=model.config.train.on_error,
        )
        return run(model, dataset, batch_size=settings.eval_batch_size, seed=config.train.seed)
    if task == "retrieve":
        from lgvq_downstream.tasks.retrieval import RetrievalDataset
        from lgvq_downstream.tasks.retrieval import evaluate as run

        dataset = RetrievalDataset(codes_dir, settings.eval_split, seed=config.seed, on_error=config.on_error)
        return run(model, dataset, config)
    raise ValueError(f"unknown task {task!r}")


def _retrieval_lines(example: dict[str, Any]) -> list[str]:
    top = [f"{i + 1}. {t['caption']}" for i, t in enumerate(example["top"][:3])]
    return [f"own (rank {example['rank']}): {example['caption']}", *top]


def figure(task: str, report: dict[str, Any], path: Path, decoder: nn.Module | None) -> Path:
    """The examples PNG of an evaluation report: images decoded from their codes by ``decoder`` (the run's
    tokenizer) with the task's text — generated vs reference captions, questions with answers, true (green)
    vs predicted (red) boxes, the best-ranked captions."""
    if task == "caption":
        from lgvq_downstream.tasks.captioning import save_caption_examples

        return save_caption_examples(report, path, tokenizer=decoder)
    if task == "vqa":
        from lgvq_downstream.tasks.vqa import save_vqa_examples

        return save_vqa_examples(report, path, tokenizer=decoder)
    if task == "ground":
        from lgvq_downstream.tasks.grounding import save_grounding_png

        return save_grounding_png(report["examples"], path, tokenizer=decoder)
    if task == "retrieve":
        from lgvq_downstream.tasks.common.plot import save_examples_png

        return save_examples_png(report["examples"], path, _retrieval_lines, tokenizer=decoder)
    raise ValueError(f"unknown task {task!r}")

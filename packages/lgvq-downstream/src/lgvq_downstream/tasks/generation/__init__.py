"""The generation tasks on a tokenizer's codes: unconditional generation, image completion, semantic image
synthesis (class mask → image) and text-to-image, all served by one :class:`GenerationModel` (a
``lgvq_downstream.generation.CodeGenerator`` trained with the conditions the tasks need).

Per task: ``build`` (:func:`build` with a config whose ``conditions`` the task needs — :data:`TASK_CONDITIONS`),
``train`` (:func:`train`) and ``evaluate`` (:func:`evaluate` with ``tasks=[task]``)::

    config = GenerationConfig(conditions=("text",))
    model = build(config, CodeShardSet(codes_dir, split="train"))
    train(model, CodeShardSet(codes_dir, split="train"))
    test = CodeShardSet(codes_dir, split="test")
    real = reference_images(test, [test[i]["id"] for i in range(len(test))])
    report = evaluate(model, test, tokenizer_model, real, tasks=["text_to_image"])
"""

from lgvq_downstream.tasks.generation.config import (
    CONDITION_KINDS,
    GENERATION_TASKS,
    GenerationConfig,
    SamplingConfig,
)
from lgvq_downstream.tasks.generation.data import GenerationExamples, collate_generation, collect_examples
from lgvq_downstream.tasks.generation.evaluate import evaluate
from lgvq_downstream.tasks.generation.figures import save_task_figures
from lgvq_downstream.tasks.generation.model import GenerationModel
from lgvq_downstream.tasks.generation.reference import reference_images
from lgvq_downstream.tasks.generation.scoring import SampleScorer
from lgvq_downstream.tasks.generation.train import build, examples_for, train, train_step

# The conditions a generator trained for one task alone needs (completion samples unconditionally).
TASK_CONDITIONS: dict[str, tuple[str, ...]] = {
    "unconditional": (),
    "completion": (),
    "semantic": ("mask",),
    "text_to_image": ("text",),
}

__all__ = [
    "CONDITION_KINDS",
    "GENERATION_TASKS",
    "TASK_CONDITIONS",
    "GenerationConfig",
    "GenerationExamples",
    "GenerationModel",
    "SampleScorer",
    "SamplingConfig",
    "build",
    "collate_generation",
    "collect_examples",
    "evaluate",
    "examples_for",
    "reference_images",
    "save_task_figures",
    "train",
    "train_step",
]

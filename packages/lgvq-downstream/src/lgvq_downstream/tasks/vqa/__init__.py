"""Visual question answering on tokenizer codes (METHOD-LGVQ §8, Table 9): answer classification from the
last hidden state of a bidirectional transformer over ``[image codes | question]``.

- :func:`build` (config, training code shards, text tokenizer) → :class:`VQAModel`;
- :func:`train` (shared loop over :func:`train_step`) → history;
- :func:`evaluate` → accuracy, per-type accuracy, WUPS, with the majority-per-type baseline and the
  shuffled-codes control; :func:`save_vqa_examples` draws the examples;
- ``VQAModel.save_pretrained`` / ``VQAModel.from_pretrained``; CLI ``lgvq-downstream vqa``.
"""

from lgvq_downstream.tasks.vqa.answers import AnswerVocab, MajorityBaseline
from lgvq_downstream.tasks.vqa.config import VQAConfig
from lgvq_downstream.tasks.vqa.data import VQAExamples, VQAQuestions, collect_questions
from lgvq_downstream.tasks.vqa.evaluate import answer_questions, evaluate, save_vqa_examples
from lgvq_downstream.tasks.vqa.model import VQAModel
from lgvq_downstream.tasks.vqa.question_types import QUESTION_TYPES, question_type
from lgvq_downstream.tasks.vqa.train import build, train, train_step

__all__ = [
    "QUESTION_TYPES",
    "AnswerVocab",
    "MajorityBaseline",
    "VQAConfig",
    "VQAExamples",
    "VQAModel",
    "VQAQuestions",
    "answer_questions",
    "build",
    "collect_questions",
    "evaluate",
    "question_type",
    "save_vqa_examples",
    "train",
    "train_step",
]

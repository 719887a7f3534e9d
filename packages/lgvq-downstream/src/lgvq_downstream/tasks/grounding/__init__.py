"""Visual grounding on image codes (TransVG-like): image codes + a referring expression → its box.

    from lgvq_downstream.tasks.grounding import GroundingConfig, GroundingDataset, build, train, evaluate
    tokenizer = load_text_tokenizer(config.text_encoder)
    train_set = GroundingDataset(codes_dir, "train", tokenizer, max_text_tokens=config.max_text_tokens)
    model = build(config, train_set)
    history = train(model, train_set)                       # history["loss"] per step
    model.save_pretrained(out_dir)                          # GroundingModel.from_pretrained(out_dir)
    report = evaluate(model, GroundingDataset(codes_dir, "test", tokenizer))

CLI: ``lgvq-downstream ground train|evaluate`` (:mod:`.cli`).
"""

from lgvq_downstream.tasks.grounding.boxes import PreprocessedFrame, box_problem, xyxy_to_cxcywh
from lgvq_downstream.tasks.grounding.config import GroundingConfig
from lgvq_downstream.tasks.grounding.data import GroundingDataset, GroundingItem, collate_grounding
from lgvq_downstream.tasks.grounding.evaluate import evaluate, predict
from lgvq_downstream.tasks.grounding.loss import GroundingLoss, batch_loss, grounding_loss, train_step
from lgvq_downstream.tasks.grounding.model import GroundingModel, build
from lgvq_downstream.tasks.grounding.plot import save_grounding_png
from lgvq_downstream.tasks.grounding.train import train

__all__ = [
    "GroundingConfig",
    "GroundingDataset",
    "GroundingItem",
    "GroundingLoss",
    "GroundingModel",
    "PreprocessedFrame",
    "batch_loss",
    "box_problem",
    "build",
    "collate_grounding",
    "evaluate",
    "grounding_loss",
    "predict",
    "save_grounding_png",
    "train",
    "train_step",
    "xyxy_to_cxcywh",
]

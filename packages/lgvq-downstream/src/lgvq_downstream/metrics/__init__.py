"""Offline downstream metrics: coco-caption scores (pycocoevalcap), box IoU/GIoU and grounding accuracy,
VQA accuracy and WUPS."""

from lgvq_downstream.metrics.boxes import (
    box_area,
    box_iou,
    box_iou_paired,
    cxcywh_to_xyxy,
    generalized_box_iou,
    generalized_box_iou_paired,
    grounding_metrics,
)
from lgvq_downstream.metrics.captions import (
    CAPTION_METRICS,
    JavaNotFoundError,
    caption_metrics,
    distinct_caption_ratio,
    ptb_tokenize,
    require_java,
)
from lgvq_downstream.metrics.vqa import normalize_answer, vqa_accuracy, vqa_metrics
from lgvq_downstream.metrics.wordnet import (
    WUPS,
    WordNetUnavailable,
    load_wordnet,
    wordnet_status,
    wup_measure,
    wups,
)

__all__ = [
    "CAPTION_METRICS",
    "JavaNotFoundError",
    "WUPS",
    "WordNetUnavailable",
    "box_area",
    "box_iou",
    "box_iou_paired",
    "caption_metrics",
    "cxcywh_to_xyxy",
    "distinct_caption_ratio",
    "generalized_box_iou",
    "generalized_box_iou_paired",
    "grounding_metrics",
    "load_wordnet",
    "normalize_answer",
    "ptb_tokenize",
    "require_java",
    "vqa_accuracy",
    "vqa_metrics",
    "wordnet_status",
    "wup_measure",
    "wups",
]

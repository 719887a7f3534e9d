"""Offline downstream metrics: coco-caption scores (pycocoevalcap), box IoU/GIoU and grounding accuracy,
VQA accuracy and WUPS; for generated images the Fréchet distance / KID to real images (``sample_fd``) and the
scene judges' condition consistency (``scene_judges``)."""

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
from lgvq_downstream.metrics.sample_fd import SampleFrechet, sample_frechet
from lgvq_downstream.metrics.scene_judges import (
    SceneAttributeJudge,
    SceneSegmenterJudge,
    attribute_targets,
    condition_consistency,
    fit_scene_judges,
    judge_accuracy,
    load_judges,
    mean_iou,
    save_judges,
    segmentation_consistency,
    train_attribute_judge,
    train_segmenter_judge,
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
    "SampleFrechet",
    "SceneAttributeJudge",
    "SceneSegmenterJudge",
    "WUPS",
    "WordNetUnavailable",
    "attribute_targets",
    "box_area",
    "box_iou",
    "box_iou_paired",
    "caption_metrics",
    "condition_consistency",
    "cxcywh_to_xyxy",
    "distinct_caption_ratio",
    "fit_scene_judges",
    "generalized_box_iou",
    "generalized_box_iou_paired",
    "grounding_metrics",
    "judge_accuracy",
    "load_judges",
    "load_wordnet",
    "mean_iou",
    "normalize_answer",
    "ptb_tokenize",
    "require_java",
    "sample_frechet",
    "save_judges",
    "segmentation_consistency",
    "train_attribute_judge",
    "train_segmenter_judge",
    "vqa_accuracy",
    "vqa_metrics",
    "wordnet_status",
    "wup_measure",
    "wups",
]

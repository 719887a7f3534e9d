"""Downstream metrics: coco-caption scores against pycocoevalcap's own scorers, hand-computed BLEU-1 and box
IoU/GIoU, VQA accuracy, WUPS on WordNet 3.0."""

from __future__ import annotations

import shutil
import time

import pytest
import torch

from lgvq_downstream.metrics import (
    WUPS,
    JavaNotFoundError,
    WordNetUnavailable,
    box_iou,
    box_iou_paired,
    caption_metrics,
    cxcywh_to_xyxy,
    distinct_caption_ratio,
    generalized_box_iou,
    generalized_box_iou_paired,
    grounding_metrics,
    load_wordnet,
    ptb_tokenize,
    vqa_accuracy,
    vqa_metrics,
    wordnet_status,
)

needs_java = pytest.mark.skipif(
    shutil.which("java") is None, reason="no `java` on PATH (default-jre-headless)"
)

# Two short caption sets with capitals, punctuation, quotes and a newline, so PTB tokenisation matters.
REFERENCES = {
    "img1": ["A man is riding a brown horse.", "A person rides a horse on the beach!", "Man on a horse."],
    "img2": ["Two dogs play with a red ball in the grass.", 'Two dogs chasing a "ball".'],
    7: ["A plate of food with broccoli,\nrice and meat.", "Some food on a white plate."],
}
CANDIDATES = {
    "img1": "a man riding a horse on the beach",
    "img2": "Two dogs playing with a ball.",
    7: "a white plate with food",
}


def _coco_reference(meteor=None) -> dict[str, float]:
    """The documented pycocoevalcap way (as in ``pycocoevalcap.eval.COCOEvalCap.evaluate``)."""
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({k: [{"caption": c} for c in v] for k, v in REFERENCES.items()})
    res = tokenizer.tokenize({k: [{"caption": v}] for k, v in CANDIDATES.items()})
    bleu, _ = Bleu(4).compute_score(gts, res)
    out = {f"BLEU-{i + 1}": b for i, b in enumerate(bleu)}
    out["ROUGE-L"] = Rouge().compute_score(gts, res)[0]
    out["CIDEr-D"] = Cider().compute_score(gts, res)[0]
    if meteor is not None:
        out["METEOR"] = meteor.compute_score(gts, res)[0]
    return out


# --------------------------------------------------------------------------------------------------- captions


@needs_java
def test_caption_metrics_equal_pycocoevalcap_scorers() -> None:
    ours = caption_metrics(REFERENCES, CANDIDATES, metrics=("bleu", "rouge", "cider"))
    reference = _coco_reference()
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-12), key
        assert ours["x100"][key] == pytest.approx(100 * value, abs=1e-10)
    assert 0.3 < ours["BLEU-1"] < 1.0 and ours["CIDEr-D"] > 0.1  # non-degenerate example
    assert "METEOR" not in ours
    assert ours["num_images"] == 3 and ours["distinct_caption_ratio"] == 1.0
    assert "CIDEr-D" in ours["protocol"]["cider"] and ours["protocol"]["package"].startswith("pycocoevalcap")


@needs_java
@pytest.mark.slow
def test_meteor_equals_pycocoevalcap_meteor() -> None:
    """Starts two METEOR JVMs (ours and the reference), ~5-20 s each."""
    from pycocoevalcap.meteor.meteor import Meteor

    start = time.perf_counter()
    ours = caption_metrics(REFERENCES, CANDIDATES, metrics=("meteor",))
    reference = Meteor()
    try:
        expected = _coco_reference(meteor=reference)["METEOR"]
        # a running scorer can be passed in and reused
        reused = caption_metrics(REFERENCES, CANDIDATES, metrics=("meteor",), meteor=reference)["METEOR"]
        # METEOR's field separator in a caption neither breaks nor hangs the scorer (PTB splits it to '| | |')
        piped = dict(CANDIDATES, img2="Two dogs ||| playing with a ball.")
        with_pipes = caption_metrics(REFERENCES, piped, metrics=("meteor",), meteor=reference)["METEOR"]
    finally:
        reference.meteor_p.kill()
    assert ours["METEOR"] == pytest.approx(expected, abs=1e-12)
    assert 0.1 < expected < 1.0
    assert reused == pytest.approx(expected, abs=1e-12)
    assert 0.0 < with_pipes < expected  # three unmatched tokens cost precision and fragment a chunk
    assert set(ours) >= {"METEOR", "distinct_caption_ratio", "protocol"}
    assert time.perf_counter() - start < 120


@needs_java
def test_bleu1_by_hand() -> None:
    # Candidate "the cat the cat on the mat" (7 tokens) against
    #   r1 "the cat is on the mat" (6) and r2 "there is a cat on the mat" (7).
    # Clipped unigram matches: the min(3, max(2, 1)) = 2, cat min(2, 1) = 1, on 1, mat 1 → 5.
    # Precision 5/7; the closest reference length is 7 = candidate length → brevity penalty 1.
    # BLEU-1 = 5/7 = 0.714285…
    refs = {0: ["The cat is on the mat.", "There is a cat on the mat."]}
    out = caption_metrics(refs, {0: "The cat the cat on the mat."}, metrics=("bleu",))
    assert out["BLEU-1"] == pytest.approx(5 / 7, abs=1e-8)


@needs_java
def test_ptb_tokenize_matches_coco_conventions() -> None:
    tokens = ptb_tokenize(['A man\'s "Big" dog, running!', "", "line\nbreak\u2028here", "MIXED Case"])
    assert tokens == ["a man 's big dog running", "", "line break here", "mixed case"]


def test_missing_java_is_a_clear_error(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(JavaNotFoundError, match="apt-get install -y default-jre-headless"):
        caption_metrics(REFERENCES, CANDIDATES)


def test_caption_metrics_validates_inputs() -> None:
    with pytest.raises(ValueError, match="candidate ids differ"):
        caption_metrics(REFERENCES, {"img1": "a man"})
    with pytest.raises(ValueError, match="unknown caption metric"):
        caption_metrics(REFERENCES, CANDIDATES, metrics=("spice",))
    with pytest.raises(ValueError, match="non-empty list"):
        caption_metrics({0: "a single string"}, {0: "a caption"})


def test_distinct_caption_ratio() -> None:
    assert distinct_caption_ratio(["A dog.", "a  dog", "a cat", "A DOG!"]) == pytest.approx(2 / 4)
    assert distinct_caption_ratio(["x"] * 5) == pytest.approx(1 / 5)


# --------------------------------------------------------------------------------------------------- boxes


def test_box_iou_and_giou_by_hand() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 4.0, 4.0]])
    b = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 3.0, 1.0], [1.0, 1.0, 2.0, 2.0]])
    # pair 0: overlap 1×1, union 4 + 4 − 1 = 7, hull 3×3 = 9 → IoU 1/7, GIoU 1/7 − 2/9
    # pair 1: disjoint, union 2, hull 3×1 = 3            → IoU 0,   GIoU −1/3
    # pair 2: b inside a, union 16 = hull                 → IoU 1/16, GIoU 1/16
    iou = torch.tensor([1 / 7, 0.0, 1 / 16])
    giou = torch.tensor([1 / 7 - 2 / 9, -1 / 3, 1 / 16])
    torch.testing.assert_close(box_iou_paired(a, b), iou)
    torch.testing.assert_close(generalized_box_iou_paired(a, b), giou)
    pairwise = box_iou(a, b)
    assert pairwise.shape == (3, 3)
    torch.testing.assert_close(pairwise.diagonal(), iou)
    assert pairwise[0, 2] == pytest.approx(1 / 4)  # [0,0,2,2] vs [1,1,2,2]: 1 / 4
    torch.testing.assert_close(generalized_box_iou(a, b).diagonal(), giou)
    torch.testing.assert_close(box_iou(a, a).diagonal(), torch.ones(3))
    point = torch.tensor([[1.0, 1.0, 1.0, 1.0]])
    assert box_iou_paired(point, point).item() == 0.0  # zero union: 0, not NaN
    assert generalized_box_iou_paired(point, point).item() == 0.0
    with pytest.raises(ValueError):
        box_iou_paired(a, b[:2])


def test_grounding_metrics_and_box_conversion() -> None:
    xyxy = cxcywh_to_xyxy(torch.tensor([[0.5, 0.5, 0.5, 0.5], [0.9, 0.1, 0.4, 0.4]]))
    torch.testing.assert_close(xyxy, torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.7, 0.0, 1.0, 0.3]]))
    target = torch.tensor([[0.0, 0.0, 2.0, 1.0], [0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    pred = torch.tensor([[0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 3.0], [0.0, 0.0, 1.0, 1.0]])
    out = grounding_metrics(pred, target)  # IoUs 0.5 (counts: ≥ 0.5), 1/7, 1
    assert out["accuracy@0.5"] == pytest.approx(2 / 3)
    assert out["mean_iou"] == pytest.approx((0.5 + 1 / 7 + 1.0) / 3)
    assert out["num_samples"] == 3


# --------------------------------------------------------------------------------------------------- VQA


def test_vqa_accuracy_per_type_and_oov() -> None:
    out = vqa_accuracy(
        ["Red.", "cat", " two ", "left"],
        ["red", "dog", "two", "kitchen"],
        question_types=["color", "object", "number", "location"],
        answer_vocab=["red", "dog", "two", "cat"],
    )
    assert out["accuracy"] == pytest.approx(2 / 4) and out["num_questions"] == 4
    assert out["per_type"]["color"] == {"accuracy": 1.0, "num_questions": 1}
    assert out["per_type"]["object"]["accuracy"] == 0.0
    assert out["out_of_vocab_fraction"] == pytest.approx(1 / 4)  # "kitchen" is not in the vocabulary
    with pytest.raises(ValueError):
        vqa_accuracy(["a"], ["a", "b"])


def test_wordnet_absent_is_reported(monkeypatch, tmp_path) -> None:
    with pytest.raises(WordNetUnavailable, match="wordnet-base"):
        load_wordnet(tmp_path)
    import lgvq_downstream.metrics.wordnet as wordnet_module

    def absent(root):
        raise WordNetUnavailable("not installed")

    monkeypatch.setattr(wordnet_module, "_find_source", absent)
    out = vqa_metrics(["red"], ["red"])
    assert out["accuracy"] == 1.0
    assert out["WUPS@0.9"] is None and out["WUPS@0.0"] is None
    assert out["wups_status"].startswith("absent")


@pytest.fixture(scope="module")
def wordnet():
    status = wordnet_status()
    if status != "available":
        pytest.skip(f"WordNet {status} (apt-get install -y wordnet-base wordnet-sense-index)")
    return load_wordnet()


def test_wups_word_pairs(wordnet) -> None:
    scorer = WUPS(wordnet)
    assert wordnet.get_version() == "3.0"
    # Wu-Palmer over noun synsets (values of WordNet 3.0), scaled by 0.1 below the threshold
    assert scorer.measure("table", "desk", 0.0) == pytest.approx(0.947, abs=1e-3)
    assert scorer.measure("table", "desk", 0.9) == pytest.approx(0.947, abs=1e-3)
    assert scorer.measure("cat", "dog", 0.0) == pytest.approx(0.857, abs=1e-3)
    assert scorer.measure("cat", "dog", 0.9) == pytest.approx(0.0857, abs=1e-4)
    assert scorer.measure("cat", "cat", 0.9) == 1.0
    assert scorer.measure("cat", "xyzzyq", 0.0) == 0.0
    # answer sets: min(Π_a max_t μ, Π_t max_a μ) = min(1 · 0.857, 1) for {cat, dog} vs {cat}
    assert scorer.score("cat,dog", "cat", 0.0) == pytest.approx(0.857, abs=1e-3)
    out = vqa_metrics(["Cat", "desk", "red"], ["dog", "table", "red"], wordnet=wordnet)
    assert out["wups_status"] == "available"
    assert out["WUPS@0.0"] == pytest.approx((0.857 + 0.947 + 1.0) / 3, abs=1e-3)
    assert out["WUPS@0.9"] == pytest.approx((0.0857 + 0.947 + 1.0) / 3, abs=1e-3)
    assert out["accuracy"] == pytest.approx(1 / 3)

"""Caption metrics with the coco-caption conventions, computed by ``pycocoevalcap`` (BLEU-1..4, METEOR 1.5,
ROUGE-L, CIDEr-D) plus the distinct-caption ratio.

Conventions (as in ``pycocoevalcap.eval.COCOEvalCap``): references and candidates go through the Stanford
PTBTokenizer bundled with pycocoevalcap (CoreNLP 3.4.1, ``-preserveLines -lowerCase``, punctuation tokens
removed); BLEU uses the "closest" reference length; ROUGE-L uses β = 1.2; METEOR is the bundled
``meteor-1.5.jar`` with ``-l en -norm``. ``pycocoevalcap.cider.Cider`` *is* CIDEr-D: clipped n-gram counts
(``min(hyp, ref)``), a Gaussian length penalty with σ = 6, mean over n = 1..4, ×10, and document frequencies
taken from the evaluated references. Values are returned raw (BLEU/METEOR/ROUGE-L in [0, 1], CIDEr-D in
[0, 10]); papers usually print them ×100, also returned under ``"x100"``.

Java start-up dominates the cost: the tokenizer runs once for references and candidates together (piped
through stdin, so nothing is written inside site-packages), and METEOR's JVM (~7–20 s to load its paraphrase
table) starts once per call, or never when a running ``Meteor`` is passed in.
"""

from __future__ import annotations

import importlib.metadata
import logging
import re
import shutil
import subprocess
from collections.abc import Hashable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = [
    "CAPTION_METRICS",
    "JavaNotFoundError",
    "caption_metrics",
    "distinct_caption_ratio",
    "ptb_tokenize",
    "require_java",
]

logger = logging.getLogger(__name__)

CAPTION_METRICS = ("bleu", "meteor", "rouge", "cider")
PTB_CLASS = "edu.stanford.nlp.process.PTBTokenizer"
# Punctuation tokens that pycocoevalcap's PTBTokenizer drops after tokenising.
PUNCTUATIONS = frozenset(
    ["''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".", "?", "!", ",", ":", "-", "--", "...", ";"]
)
_SENTINEL = "lgvqendofbatch"


class JavaNotFoundError(RuntimeError):
    """No ``java`` executable on PATH (needed by the PTB tokenizer and METEOR)."""


def require_java() -> str:
    """Path of the ``java`` executable; raises ``JavaNotFoundError`` with the install command otherwise."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(
            "caption metrics need a Java runtime (the coco-caption PTB tokenizer and METEOR 1.5 are Java "
            "programs) but `java` is not on PATH; install one, e.g. `apt-get install -y default-jre-headless`"
        )
    return java


def _ptb_jar() -> Path:
    """The Stanford CoreNLP 3.4.1 jar shipped inside pycocoevalcap (a namespace package: no ``__file__``)."""
    try:
        from pycocoevalcap.tokenizer import ptbtokenizer
    except ImportError as err:
        raise ImportError("caption metrics need pycocoevalcap: `pip install pycocoevalcap==1.2`") from err
    return Path(ptbtokenizer.__file__).parent / ptbtokenizer.STANFORD_CORENLP_3_4_1_JAR


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())  # every Unicode line break would split a line in the tokenizer


def ptb_tokenize(sentences: Sequence[str]) -> list[str]:
    """Tokenise like pycocoevalcap's ``PTBTokenizer`` (lower-cased, punctuation removed), in one Java call.

    Returns one space-joined string per input sentence, in order.
    """
    java = require_java()
    jar = _ptb_jar()
    lines = [_one_line(s) for s in sentences] + [_SENTINEL]
    proc = subprocess.run(
        [java, "-cp", str(jar), PTB_CLASS, "-preserveLines", "-lowerCase"],
        input="\n".join(lines) + "\n",
        capture_output=True,
        text=True,
        encoding="utf-8",
        check=False,
    )
    out = proc.stdout.split("\n")
    n = len(sentences)
    if proc.returncode != 0 or len(out) <= n or out[n].strip() != _SENTINEL:
        raise RuntimeError(
            f"PTB tokenizer failed (exit {proc.returncode}, {len(out)} lines for {n} sentences): "
            f"{proc.stderr.strip()[-500:]}"
        )
    return [" ".join(w for w in line.rstrip().split(" ") if w not in PUNCTUATIONS) for line in out[:n]]


def distinct_caption_ratio(captions: Iterable[str]) -> float:
    """Distinct captions / captions, after lower-casing and keeping word characters only (1.0 = all differ;
    1/N = the same caption for every image, a common degenerate output)."""
    normalised = [" ".join(re.findall(r"\w+", c.lower())) for c in captions]
    if not normalised:
        raise ValueError("no captions")
    return len(set(normalised)) / len(normalised)


def caption_metrics(
    references: Mapping[Hashable, Sequence[str]],
    candidates: Mapping[Hashable, str],
    *,
    metrics: Sequence[str] = CAPTION_METRICS,
    meteor: Any | None = None,
) -> dict[str, Any]:
    """Corpus-level caption metrics (see module docstring).

    Args:
        references: id → reference captions (≥ 1 each).
        candidates: id → one generated caption; the ids must equal those of ``references``.
        metrics: subset of ``("bleu", "meteor", "rouge", "cider")``; skipping METEOR avoids its JVM.
        meteor: a running ``pycocoevalcap.meteor.meteor.Meteor`` to reuse across calls; by default one is
            started and stopped here.

    Returns:
        ``BLEU-1``..``BLEU-4``, ``METEOR``, ``ROUGE-L``, ``CIDEr-D`` (raw, those requested),
        ``distinct_caption_ratio``, ``num_images``, ``x100`` (the metrics ×100) and ``protocol``.
    """
    unknown = sorted(set(metrics) - set(CAPTION_METRICS))
    if unknown:
        raise ValueError(f"unknown caption metric(s) {unknown}; choose from {list(CAPTION_METRICS)}")
    ids = list(references)
    if not ids:
        raise ValueError("no references")
    if set(ids) != set(candidates):
        missing, extra = set(ids) - set(candidates), set(candidates) - set(ids)
        raise ValueError(
            f"candidate ids differ from reference ids: {len(missing)} without a candidate, "
            f"{len(extra)} without references (e.g. {sorted(map(str, missing | extra))[:5]})"
        )
    for i in ids:
        refs = references[i]
        if isinstance(refs, str) or len(refs) == 0:
            raise ValueError(f"references[{i!r}] must be a non-empty list of strings")
        if not isinstance(candidates[i], str):
            raise ValueError(f"candidates[{i!r}] must be a string")

    flat = [r for i in ids for r in references[i]] + [candidates[i] for i in ids]
    tokens = ptb_tokenize(flat)
    gts: dict[Hashable, list[str]] = {}
    pos = 0
    for i in ids:
        gts[i] = tokens[pos : pos + len(references[i])]
        pos += len(references[i])
    res = {i: [tokens[pos + k]] for k, i in enumerate(ids)}

    results: dict[str, Any] = {}
    if "bleu" in metrics:
        from pycocoevalcap.bleu.bleu import Bleu

        bleu, _ = Bleu(4).compute_score(gts, res, verbose=0)
        results.update({f"BLEU-{n + 1}": float(v) for n, v in enumerate(bleu)})
    if "meteor" in metrics:
        results["METEOR"] = _meteor(gts, res, meteor)
    if "rouge" in metrics:
        from pycocoevalcap.rouge.rouge import Rouge

        results["ROUGE-L"] = float(Rouge().compute_score(gts, res)[0])
    if "cider" in metrics:
        from pycocoevalcap.cider.cider import Cider

        results["CIDEr-D"] = float(Cider().compute_score(gts, res)[0])
    scaled = {k: 100.0 * v for k, v in results.items()}
    results["distinct_caption_ratio"] = distinct_caption_ratio(candidates[i] for i in ids)
    results["num_images"] = len(ids)
    results["x100"] = scaled
    results["protocol"] = {
        "package": f"pycocoevalcap {_version()}",
        "tokenizer": "Stanford PTBTokenizer (CoreNLP 3.4.1) -preserveLines -lowerCase, punctuation removed",
        "bleu": "coco-caption BleuScorer, option 'closest'",
        "meteor": "METEOR 1.5 jar, -l en -norm",
        "rouge": "ROUGE-L, beta 1.2, max precision/recall over references",
        "cider": "CIDEr-D (pycocoevalcap.cider.Cider: clipped counts, sigma 6, x10, IDF from the references)",
        "scale": "raw: BLEU/METEOR/ROUGE-L in [0, 1], CIDEr-D in [0, 10]; 'x100' holds them x100",
    }
    return results


def _meteor(gts: dict[Hashable, list[str]], res: dict[Hashable, list[str]], meteor: Any | None) -> float:
    """METEOR 1.5 through pycocoevalcap's wrapper. Its field separator '|||' cannot survive PTB tokenisation
    ('| | |'); it is still removed from every caption in case tokenised text is fed in some other way."""

    def clean(text: str) -> str:
        return " ".join(text.replace("|||", " ").split())

    clean_gts = {i: [clean(r) for r in refs] for i, refs in gts.items()}
    clean_res = {i: [clean(c) for c in cands] for i, cands in res.items()}
    if meteor is not None:
        return float(meteor.compute_score(clean_gts, clean_res)[0])
    require_java()
    from pycocoevalcap.meteor.meteor import Meteor

    logger.info("starting the METEOR 1.5 JVM (loads its paraphrase table, ~7-20 s)")
    scorer = Meteor()
    try:
        return float(scorer.compute_score(clean_gts, clean_res)[0])
    finally:
        _stop(scorer)


def _stop(scorer: Any) -> None:
    proc = getattr(scorer, "meteor_p", None)
    if proc is not None and proc.poll() is None:
        proc.stdin.close()
        proc.kill()
        proc.wait()


def _version() -> str:
    try:
        return importlib.metadata.version("pycocoevalcap")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

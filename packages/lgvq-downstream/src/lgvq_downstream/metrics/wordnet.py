"""WUPS (Malinowski & Fritz, 2014): answer accuracy softened by Wu-Palmer similarity on WordNet nouns.

For answer word sets A (prediction) and T (truth), comma-separated as in the authors' ``calculate_wups.py``::

    WUPS(A, T) = min( Π_{a∈A} max_{t∈T} μ(a, t),  Π_{t∈T} max_{a∈A} μ(a, t) )
    μ(a, t) = 1 if a == t, else w = max over noun synsets of WUP(x, y), scaled by 0.1 when w < threshold

averaged over questions (in [0, 1]; papers print ×100). WUPS@0.9 and WUPS@0.0 are the usual thresholds.

WordNet 3.0 is read offline by NLTK's reader from an ``nltk_data/corpora/wordnet`` directory or from Debian's
``/usr/share/wordnet`` (packages ``wordnet-base`` + ``wordnet-sense-index``). Debian ships no ``lexnames``
file, so a shadow directory (copies of the database files + the 45-line ``lexnames`` of the ``lexnames(5WN)``
man page) is built under ``~/.cache/lgvq/nltk_data`` and added to ``nltk.data.path`` (NLTK's path sandbox
refuses any other location, symlinks out of it and hard links). Without WordNet, ``WordNetUnavailable`` is
raised; ``wordnet_status`` tells a report why WUPS is absent.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import shutil
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["WUPS", "WordNetUnavailable", "load_wordnet", "wordnet_status", "wup_measure", "wups"]

logger = logging.getLogger(__name__)

DEBIAN_WORDNET = Path("/usr/share/wordnet")
INSTALL_HINT = "apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index"
REQUIRED_FILES = ("index.noun", "data.noun", "noun.exc", "index.sense")
POS_SUFFIXES = ("noun", "verb", "adj", "adv")
DATABASE_FILES = (
    *(f"{kind}.{pos}" for kind in ("index", "data") for pos in POS_SUFFIXES),
    *(f"{pos}.exc" for pos in POS_SUFFIXES),
    "index.sense",
    "cntlist.rev",
)
# lexnames(5WN), WordNet 3.0: file number = position; syntactic category 1 noun, 2 verb, 3 adj, 4 adv.
LEXNAMES = (
    "adj.all adj.pert adv.all noun.Tops noun.act noun.animal noun.artifact noun.attribute noun.body "
    "noun.cognition noun.communication noun.event noun.feeling noun.food noun.group noun.location "
    "noun.motive noun.object noun.person noun.phenomenon noun.plant noun.possession noun.process "
    "noun.quantity noun.relation noun.shape noun.state noun.substance noun.time verb.body verb.change "
    "verb.cognition verb.communication verb.competition verb.consumption verb.contact verb.creation "
    "verb.emotion verb.motion verb.perception verb.possession verb.social verb.stative verb.weather adj.ppl"
).split()
_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}


class WordNetUnavailable(RuntimeError):
    """WordNet data (or NLTK) is not available offline; the message says what to install."""


def _lexnames_text() -> str:
    return "".join(f"{i:02d}\t{name}\t{_CATEGORY[name.split('.')[0]]}\n" for i, name in enumerate(LEXNAMES))


def _find_source(root: str | os.PathLike[str] | None) -> Path:
    candidates = [Path(root)] if root is not None else []
    if root is None:
        if os.environ.get("LGVQ_WORDNET_DIR"):
            candidates.append(Path(os.environ["LGVQ_WORDNET_DIR"]))
        import nltk

        candidates += [Path(str(p)) / "corpora" / "wordnet" for p in nltk.data.path]
        candidates.append(DEBIAN_WORDNET)
    for path in candidates:
        if all((path / name).is_file() for name in REQUIRED_FILES):
            return path
    raise WordNetUnavailable(
        f"WordNet 3.0 not found (looked in {', '.join(map(str, candidates))}; "
        f"need {', '.join(REQUIRED_FILES)}); "
        f"install it with `{INSTALL_HINT}` or set LGVQ_WORDNET_DIR"
    )


def _shadow_dir(source: Path, cache_root: Path) -> Path:
    """``cache_root/corpora/wordnet``: copies of the database files NLTK reads plus a generated ``lexnames``
    (~33 MB, once). Not links: NLTK refuses symlinks leaving the corpus root and multiply-linked files."""
    shadow = cache_root / "corpora" / "wordnet"
    shadow.mkdir(parents=True, exist_ok=True)
    for name in DATABASE_FILES:
        item, target = source / name, shadow / name
        if not item.is_file() or (target.is_file() and target.stat().st_size == item.stat().st_size):
            continue
        fd, tmp = tempfile.mkstemp(dir=shadow, prefix=f".{name}.")
        os.close(fd)
        shutil.copyfile(item, tmp)
        os.replace(tmp, target)
    if not (shadow / "lexnames").is_file():
        fd, tmp = tempfile.mkstemp(dir=shadow, prefix=".lexnames.")
        with os.fdopen(fd, "w") as handle:
            handle.write(_lexnames_text())
        os.replace(tmp, shadow / "lexnames")
    return shadow


@functools.lru_cache(maxsize=4)
def _load(source: Path, cache_root: Path) -> Any:
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    directory = source if (source / "lexnames").is_file() else _shadow_dir(source, cache_root)
    for allowed in (directory.parent.parent, source.resolve()):
        if str(allowed) not in map(str, nltk.data.path):
            nltk.data.path.insert(0, str(allowed))
    with warnings.catch_warnings():  # "multilingual functions are not available": no OMW data, not needed
        warnings.simplefilter("ignore", UserWarning)
        reader = WordNetCorpusReader(str(directory), None)
    logger.info("WordNet %s loaded from %s", reader.get_version(), source)
    return reader


def load_wordnet(
    root: str | os.PathLike[str] | None = None, *, cache_dir: str | os.PathLike[str] | None = None
) -> Any:
    """NLTK ``WordNetCorpusReader`` over WordNet 3.0, offline (see module docstring); cached per process."""
    try:
        import nltk  # noqa: F401
    except ImportError as err:
        raise WordNetUnavailable("WUPS needs nltk: `pip install nltk`") from err
    source = _find_source(root).resolve()
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    cache_root = Path(cache_dir) if cache_dir is not None else Path(xdg) / "lgvq" / "nltk_data"
    return _load(source, cache_root.resolve())


def wordnet_status() -> str:
    """``"available"`` or ``"absent: <reason>"`` (for reports that print WUPS as absent)."""
    try:
        load_wordnet()
    except WordNetUnavailable as err:
        return f"absent: {err}"
    return "available"


def wup_measure(a: str, b: str, threshold: float, wordnet: Any) -> float:
    """μ(a, b) of the module docstring for two single answer words."""
    if a == b:
        return 1.0
    synsets_a, synsets_b = wordnet.synsets(a, pos="n"), wordnet.synsets(b, pos="n")
    if not synsets_a or not synsets_b:
        return 0.0
    best = max((x.wup_similarity(y) or 0.0) for x in synsets_a for y in synsets_b)
    return best if best >= threshold else 0.1 * best


class WUPS:
    """WUPS scorer with a per-pair cache. ``WUPS()(predictions, truths, threshold=0.9)`` → mean in [0, 1]."""

    def __init__(self, wordnet: Any | None = None) -> None:
        self.wordnet = wordnet if wordnet is not None else load_wordnet()
        self._cache: dict[tuple[str, str, float], float] = {}

    def measure(self, a: str, b: str, threshold: float) -> float:
        key = (a, b, threshold)
        if key not in self._cache:
            self._cache[key] = wup_measure(a, b, threshold, self.wordnet)
        return self._cache[key]

    def score(self, prediction: str, truth: str, threshold: float) -> float:
        """WUPS of one answer pair (comma-separated word sets, lower-cased and stripped)."""
        pred = [w.strip().lower() for w in prediction.split(",") if w.strip()]
        true = [w.strip().lower() for w in truth.split(",") if w.strip()]
        if not pred and not true:
            return 1.0
        if not pred or not true:
            return 0.0
        left = math.prod(max(self.measure(a, t, threshold) for t in true) for a in pred)
        right = math.prod(max(self.measure(t, a, threshold) for a in pred) for t in true)
        return min(left, right)

    def __call__(self, predictions: Sequence[str], truths: Sequence[str], *, threshold: float) -> float:
        if len(predictions) != len(truths) or not truths:
            raise ValueError(
                f"need equally many predictions and truths (> 0), got {len(predictions)}/{len(truths)}"
            )
        return sum(self.score(p, t, threshold) for p, t in zip(predictions, truths, strict=True)) / len(
            truths
        )


def wups(
    predictions: Sequence[str], truths: Sequence[str], *, threshold: float = 0.9, wordnet: Any | None = None
) -> float:
    """Mean WUPS@threshold over question pairs (raises ``WordNetUnavailable`` without WordNet)."""
    return WUPS(wordnet)(predictions, truths, threshold=threshold)

"""VQCT's word codebook: a part-of-speech-filtered vocabulary from captions, its word vectors and the
adjective→noun co-occurrence graph (BASELINES §4.2–4.3, re-built offline).

Differences from the reference script, on purpose:
- POS tags come from an injected tagger; the default is textblob's ``PatternTagger`` (a lexicon tagger that
ships its
  data, OFFLINE-ASSETS Q2) instead of NLTK's perceptron tagger (needs a download). Tags are Penn Treebank.
- Plural nouns (NNS/NNPS) are singularised with textblob's rule-based ``Word.singularize`` (no WordNet
download);
  the reference lemmatises with WordNet.
- A word tagged both JJ and NN stays in both lists with its own node; the reference maps it to its noun index.
Kept as in the reference: captions lower-cased before tagging, adjectives = JJ only (not lemmatised), nouns =
NN*,
``count > min_count`` (strict), first-occurrence order, edges = an adjective immediately followed by a noun,
prompts "a photo of {w} object" (adjectives) and "a photo of {w}" (nouns).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "WordCodebookSpec",
    "build_word_codebook",
    "pattern_tagger",
    "ADJECTIVE_TEMPLATE",
    "NOUN_TEMPLATE",
    "ADJECTIVE_TAGS",
    "NOUN_TAGS",
]

logger = logging.getLogger(__name__)

ADJECTIVE_TEMPLATE = "a photo of {} object"
NOUN_TEMPLATE = "a photo of {}"
ADJECTIVE_TAGS = frozenset({"JJ"})
NOUN_TAGS = frozenset({"NN", "NNS", "NNP", "NNPS"})

Tagger = Callable[[str], list[tuple[str, str]]]


@dataclass
class WordCodebookSpec:
    """Everything VQCT's codebook is made from.

    Attributes:
        adjectives: A words; nouns: N words (noun lemmas).
        adjective_vectors: A×W word vectors; noun_vectors: N×W (frozen, from the text encoder).
        cooccurrence: A×N float counts of "adjective immediately followed by noun" in the captions.
    """

    adjectives: list[str]
    nouns: list[str]
    adjective_vectors: Tensor
    noun_vectors: Tensor
    cooccurrence: Tensor

    def __post_init__(self) -> None:
        a, n = len(self.adjectives), len(self.nouns)
        if a == 0 or n == 0:
            raise ValueError(f"VQCT needs at least one adjective and one noun (got {a} and {n})")
        if self.adjective_vectors.shape[0] != a or self.noun_vectors.shape[0] != n:
            raise ValueError("word vector rows must match the adjective/noun lists")
        if self.adjective_vectors.shape[1] != self.noun_vectors.shape[1]:
            raise ValueError("adjective and noun vectors must have the same width")
        if tuple(self.cooccurrence.shape) != (a, n):
            raise ValueError(f"cooccurrence must be {a}×{n}, got {tuple(self.cooccurrence.shape)}")

    @property
    def edge_index(self) -> Tensor:
        """2×E (adjective index, noun index) of the non-zero co-occurrences."""
        return self.cooccurrence.nonzero().t().contiguous()

    @property
    def edge_weight(self) -> Tensor:
        """E counts matching ``edge_index``."""
        a, n = self.edge_index
        return self.cooccurrence[a, n].float()


_PATTERN_TAGGER = None


def pattern_tagger(text: str) -> list[tuple[str, str]]:
    """Penn Treebank tags with textblob's offline ``PatternTagger`` (not ``TextBlob.tags``, which needs NLTK
    data)."""
    global _PATTERN_TAGGER
    if _PATTERN_TAGGER is None:
        try:
            from textblob.en.taggers import PatternTagger
        except ImportError as err:  # pragma: no cover - environment dependent
            raise ImportError(
                "the default POS tagger needs textblob: pip install 'lgvq-core[offline-assets]'"
            ) from err
        _PATTERN_TAGGER = PatternTagger()
    return [(str(w), str(t)) for w, t in _PATTERN_TAGGER.tag(text)]


def _singularize(word: str) -> str:
    try:
        from textblob import Word
    except ImportError:  # pragma: no cover
        return word
    return str(Word(word).singularize())


def build_word_codebook(
    captions: Iterable[str],
    *,
    embed_words: Callable[[list[str]], Tensor],
    tagger: Tagger | None = None,
    min_count: int = 10,
    adjective_template: str = ADJECTIVE_TEMPLATE,
    noun_template: str = NOUN_TEMPLATE,
) -> WordCodebookSpec:
    """Tag the captions, keep adjectives/nouns seen more than ``min_count`` times, embed them and count edges.

    Args:
        captions: caption strings (e.g. every training caption).
        embed_words: maps a list of prompts to a len×W tensor (the text encoder's sentence vectors).
        tagger: ``text -> [(token, PennTag)]``; default ``pattern_tagger``.
        min_count: keep words with count strictly greater than this (VQCT: 10).
    """
    tag = tagger or pattern_tagger
    adj_counts: dict[str, int] = {}
    noun_counts: dict[str, int] = {}
    pair_counts: dict[tuple[str, str], int] = {}
    singular_cache: dict[str, str] = {}
    num_captions = 0
    for caption in captions:
        num_captions += 1
        tagged = tag(caption.lower())
        lemmas: list[str | None] = []
        for word, pos in tagged:
            if pos in NOUN_TAGS:
                if pos in ("NNS", "NNPS"):
                    if word not in singular_cache:
                        singular_cache[word] = _singularize(word)
                    lemma = singular_cache[word]
                else:
                    lemma = word
                noun_counts[lemma] = noun_counts.get(lemma, 0) + 1
                lemmas.append(lemma)
            else:
                if pos in ADJECTIVE_TAGS:
                    adj_counts[word] = adj_counts.get(word, 0) + 1
                lemmas.append(None)
        for i in range(len(tagged) - 1):
            if tagged[i][1] in ADJECTIVE_TAGS and lemmas[i + 1] is not None:
                key = (tagged[i][0], lemmas[i + 1])
                pair_counts[key] = pair_counts.get(key, 0) + 1
    adjectives = [w for w, c in adj_counts.items() if c > min_count]
    nouns = [w for w, c in noun_counts.items() if c > min_count]
    if not adjectives or not nouns:
        raise ValueError(
            f"vocabulary empty after filtering {num_captions} captions with count > {min_count}: "
            f"{len(adjectives)} adjectives, {len(nouns)} nouns; lower min_count or give more captions"
        )
    adj_index = {w: i for i, w in enumerate(adjectives)}
    noun_index = {w: i for i, w in enumerate(nouns)}
    cooccurrence = torch.zeros(len(adjectives), len(nouns))
    for (a, n), c in pair_counts.items():
        if a in adj_index and n in noun_index:
            cooccurrence[adj_index[a], noun_index[n]] += c
    adjective_vectors = embed_words([adjective_template.format(w) for w in adjectives]).detach().float().cpu()
    noun_vectors = embed_words([noun_template.format(w) for w in nouns]).detach().float().cpu()
    logger.info(
        "VQCT vocabulary from %d captions: %d adjectives, %d nouns, %d edges",
        num_captions,
        len(adjectives),
        len(nouns),
        int((cooccurrence > 0).sum()),
    )
    return WordCodebookSpec(adjectives, nouns, adjective_vectors, noun_vectors, cooccurrence)

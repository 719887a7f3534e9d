"""Fixtures for the lgvq-core tests; the builders live in ``core_helpers`` (a unique module name, so
test files can import it whichever conftest pytest loaded first)."""

from __future__ import annotations

import pytest
import torch
from core_helpers import CAPTIONS, hashed_word_vectors

from lgvq_core.quantizers.vqct_vocabulary import WordCodebookSpec, build_word_codebook


@pytest.fixture(scope="session")
def word_spec() -> WordCodebookSpec:
    return build_word_codebook(CAPTIONS, embed_words=hashed_word_vectors, min_count=2)


@pytest.fixture
def images() -> torch.Tensor:
    return torch.rand(2, 3, 16, 16, generator=torch.Generator().manual_seed(1)) * 2 - 1

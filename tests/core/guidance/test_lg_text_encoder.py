"""Text encoders: a tiny CLIP saved to / loaded from a local folder, the shipped MiniLM, the feature cache."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from lgvq_core.guidance import HFTextEncoder, TextFeatureCache
from lgvq_core.guidance.text_encoder import load_text_encoder

CAPTIONS = ["a small red bird with black wings", "a large blue circle", "the cat to the left of a dog"]


def test_clip_folder_round_trip_and_features(tiny_clip_dir, tiny_clip) -> None:
    from transformers import CLIPTextModel, CLIPTokenizer

    assert tiny_clip.kind == "clip" and tiny_clip.sentence_size == tiny_clip.hidden_size == 32
    features = tiny_clip.encode(CAPTIONS)
    assert features.token_states.shape == (3, 12, 32) and features.sentence.shape == (3, 32)
    reference_model = CLIPTextModel.from_pretrained(tiny_clip_dir, local_files_only=True).eval()
    tokenizer = CLIPTokenizer.from_pretrained(tiny_clip_dir, local_files_only=True)
    encoded = tokenizer(CAPTIONS, padding="max_length", max_length=12, truncation=True, return_tensors="pt")
    with torch.no_grad():
        out = reference_model(**encoded)
    real = encoded["attention_mask"].bool()
    torch.testing.assert_close(features.token_states[real], out.last_hidden_state[real])
    assert features.token_states[~real].abs().sum() == 0  # padding states are zeros
    # without a projection the sentence embedding is the EOT state
    eot = (encoded["input_ids"] == tokenizer.eos_token_id).int().argmax(dim=1)
    torch.testing.assert_close(features.sentence, out.last_hidden_state[torch.arange(3), eot])
    assert features.attention_mask.tolist() == encoded["attention_mask"].bool().tolist()
    # start and end tokens are special; padding is not attended
    assert features.special_mask[:, 0].all()
    assert (features.special_mask.sum(dim=1) == 2).all()
    assert tiny_clip.input_embeddings().shape == (tiny_clip.vocab_size, 32)


def test_clip_with_projection_uses_projected_eot(tiny_clip_projection_dir) -> None:
    from transformers import CLIPTextModelWithProjection

    encoder = load_text_encoder(str(tiny_clip_projection_dir), context_length=12)
    assert encoder.kind == "clip" and encoder.sentence_size == 24
    reference = CLIPTextModelWithProjection.from_pretrained(
        tiny_clip_projection_dir, local_files_only=True
    ).eval()
    ids, attention = encoder.tokenize(CAPTIONS)
    with torch.no_grad():
        expected = reference(input_ids=ids, attention_mask=attention.long()).text_embeds
    torch.testing.assert_close(encoder.encode(CAPTIONS).sentence, expected)


def test_encoder_is_frozen(tiny_clip) -> None:
    assert all(not p.requires_grad for p in tiny_clip.parameters())
    tiny_clip.train()
    assert not tiny_clip.training and not tiny_clip.model.training
    assert not tiny_clip.encode(CAPTIONS[:1]).token_states.requires_grad


def test_context_length_is_checked(tiny_clip_dir) -> None:
    with pytest.raises(ValueError, match="exceeds"):
        HFTextEncoder.from_pretrained(tiny_clip_dir, kind="clip", context_length=64)


def test_captions_must_be_a_list_of_strings(tiny_clip) -> None:
    with pytest.raises(TypeError, match="list of strings"):
        tiny_clip.encode("a red bird")


def test_minilm_shipped_weights_give_meaningful_sentences(minilm) -> None:
    assert (minilm.hidden_size, minilm.vocab_size, minilm.mask_token_id) == (384, 30522, 103)
    features = minilm.encode(
        ["a small red bird with black wings", "a tiny crimson bird with dark wings", "a yellow school bus"]
    )
    s = F.normalize(features.sentence, dim=-1)
    close, far = float(s[0] @ s[1]), float(s[0] @ s[2])
    assert close > 0.7 and far < 0.35
    # sentence = mean of the attended token states
    mask = features.attention_mask[0]
    torch.testing.assert_close(features.sentence[0], features.token_states[0][mask].mean(dim=0))
    assert minilm.tokenizer.convert_ids_to_tokens(features.token_ids[0, :3].tolist()) == [
        "[CLS]",
        "a",
        "small",
    ]


def test_cache_returns_identical_features_and_counts_hits(tiny_clip) -> None:
    cache = TextFeatureCache(tiny_clip, max_entries=3)
    direct = tiny_clip.encode(CAPTIONS)
    first = cache.encode(CAPTIONS)
    assert (cache.hits, cache.misses) == (0, 3)
    second = cache.encode([CAPTIONS[2], CAPTIONS[0], CAPTIONS[2]])
    assert (cache.hits, cache.misses) == (3, 3)
    torch.testing.assert_close(first.token_states, direct.token_states)
    torch.testing.assert_close(second.sentence, direct.sentence[[2, 0, 2]])
    assert second.token_ids.tolist() == direct.token_ids[[2, 0, 2]].tolist()


def test_cache_evicts_least_recently_used(tiny_clip) -> None:
    cache = TextFeatureCache(tiny_clip, max_entries=2)
    cache.encode([CAPTIONS[0]])
    cache.encode([CAPTIONS[1]])
    cache.encode([CAPTIONS[0]])  # 0 is now the most recent
    cache.encode([CAPTIONS[2]])  # evicts 1
    assert len(cache) == 2
    misses = cache.misses
    cache.encode([CAPTIONS[0]])
    assert cache.misses == misses
    cache.encode([CAPTIONS[1]])
    assert cache.misses == misses + 1


def test_disabled_cache_stores_nothing(tiny_clip) -> None:
    cache = TextFeatureCache(tiny_clip, max_entries=0)
    cache.encode(CAPTIONS)
    cache.encode(CAPTIONS)
    assert len(cache) == 0 and cache.misses == 6

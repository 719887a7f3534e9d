"""Beam search (captions) for ``CodeTransformer`` with a KV cache, length penalty and EOS handling.

A hypothesis' score is its summed log-probability divided by ``length ** length_penalty`` (length = generated
tokens, EOS included; 0 = no normalisation, 1 = mean log-probability). Each step ranks 2·beam candidates per
item: a candidate ending in EOS among the top ``beam_size`` becomes a finished hypothesis, the others refill
the beam. An item stops once it holds ``beam_size`` finished hypotheses (``early_stopping=True`` in the
Hugging Face sense); at ``max_new_tokens`` the live beams join the finished ones. With ``beam_size=1`` this is
greedy decoding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from lgvq_downstream.transformer.model import CodeTransformer, Modality
from lgvq_downstream.transformer.sampling import prepare_prompt

__all__ = ["BeamSearchOutput", "beam_search"]


@dataclass
class BeamSearchOutput:
    """``tokens`` B×(t + n) (prompt + best hypothesis, ``pad_id`` after its end); ``scores`` B (normalised
    log-probability of the best hypothesis)."""

    tokens: Tensor
    scores: Tensor


@torch.no_grad()
def beam_search(
    model: CodeTransformer,
    *,
    modality: Modality = "text",
    prefix_embeds: Tensor | None = None,
    image_codes: Tensor | None = None,
    text_tokens: Tensor | None = None,
    beam_size: int = 5,
    max_new_tokens: int,
    eos_id: int | None = None,
    pad_id: int = 0,
    length_penalty: float = 1.0,
    suppress_ids: Sequence[int] = (),
) -> BeamSearchOutput:
    """Best continuation of the ``modality`` segment per batch item (see module docstring)."""
    if beam_size < 1 or max_new_tokens < 1:
        raise ValueError("beam_size and max_new_tokens must be ≥ 1")
    if model.config.attention == "bidirectional":
        raise ValueError("beam search needs attention='causal' or 'prefix'")
    inputs = {"prefix_embeds": prefix_embeds, "image_codes": image_codes, "text_tokens": text_tokens}
    prompt, rest = prepare_prompt(model, modality, inputs)
    key = "image_codes" if modality == "image" else "text_tokens"
    batch, device = prompt.shape[0], prompt.device

    cache = model.new_cache()
    out = model(**rest, **{key: prompt}, cache=cache)
    cache.repeat_interleave(beam_size)
    last = out.hidden[:, -1].repeat_interleave(beam_size, dim=0)  # (B·beam)×C
    scores = torch.full((batch, beam_size), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: expand from one of them only
    generated = torch.empty(batch * beam_size, 0, dtype=torch.long, device=device)
    finished: list[list[tuple[float, Tensor]]] = [[] for _ in range(batch)]
    done = [False] * batch

    for step in range(max_new_tokens):
        logp = model.logits(last, modality).float().log_softmax(dim=-1)
        if suppress_ids:
            logp[:, list(suppress_ids)] = float("-inf")
        vocab = logp.shape[-1]
        total = (scores.reshape(-1, 1) + logp).reshape(batch, beam_size * vocab)
        top_scores, top_index = total.topk(min(2 * beam_size, beam_size * vocab), dim=-1)
        next_scores = torch.full((batch, beam_size), float("-inf"), device=device)
        next_tokens = torch.full((batch, beam_size), pad_id, dtype=torch.long, device=device)
        parents = torch.arange(batch * beam_size, device=device).reshape(batch, beam_size)
        length = step + 1
        for b in range(batch):
            if done[b]:
                next_scores[b] = scores[b]
                continue
            slot = 0
            for rank, (score, index) in enumerate(
                zip(top_scores[b].tolist(), top_index[b].tolist(), strict=True)
            ):
                if score == float("-inf"):
                    break
                beam, token = divmod(index, vocab)
                if eos_id is not None and token == eos_id:
                    if rank < beam_size:
                        seq = torch.cat([generated[b * beam_size + beam], generated.new_tensor([token])])
                        finished[b].append((score / length**length_penalty, seq))
                    continue
                next_scores[b, slot], next_tokens[b, slot] = score, token
                parents[b, slot] = b * beam_size + beam
                slot += 1
                if slot == beam_size:
                    break
            done[b] = len(finished[b]) >= beam_size
        scores = next_scores
        flat_parents = parents.reshape(-1)
        generated = torch.cat([generated[flat_parents], next_tokens.reshape(-1, 1)], dim=1)
        if all(done) or step == max_new_tokens - 1:
            break
        cache.reorder(flat_parents)
        out = model(**{key: next_tokens.reshape(-1, 1)}, cache=cache)
        last = out.hidden[:, -1]

    best_tokens, best_scores = [], []
    for b in range(batch):
        hyps = list(finished[b])
        if not done[b]:
            for beam in range(beam_size):
                if scores[b, beam] > float("-inf"):
                    seq = generated[b * beam_size + beam]
                    hyps.append((float(scores[b, beam]) / seq.numel() ** length_penalty, seq))
        score, seq = max(hyps, key=lambda h: h[0])
        best_tokens.append(seq)
        best_scores.append(score)
    width = max(seq.numel() for seq in best_tokens)
    padded = torch.full((batch, width), pad_id, dtype=torch.long, device=device)
    for b, seq in enumerate(best_tokens):
        padded[b, : seq.numel()] = seq
    return BeamSearchOutput(
        tokens=torch.cat([prompt, padded], dim=1), scores=torch.tensor(best_scores, device=device)
    )

"""EMA maths against hand-computed values, k-means init, dead-code restart, CVQ re-initialisation."""

from __future__ import annotations

import torch

from lgvq_core.quantizers.cvq import ClusteredVectorQuantizer, cvq_contrastive_loss
from lgvq_core.quantizers.search import nearest_code, topk_codes
from lgvq_core.quantizers.vq import VectorQuantizer, kmeans


def _latent(rows: list[list[float]]) -> torch.Tensor:
    """N×D rows → 1×D×1×N latent."""
    return torch.tensor(rows).t().reshape(1, len(rows[0]), 1, len(rows))


def test_ema_update_matches_hand_computed_values():
    q = VectorQuantizer(2, 2, codebook_update="ema", ema_decay=0.5, ema_eps=0.1)
    q.codebook.data = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    q.embed_avg.copy_(q.codebook.data)
    q.train()
    out = q(_latent([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]]))
    assert out.indices.flatten().tolist() == [0, 0, 1]
    # cluster_size = 0.5*[1, 1] + 0.5*[2, 1] = [1.5, 1.0]
    torch.testing.assert_close(q.cluster_size, torch.tensor([1.5, 1.0]))
    # embed_avg = 0.5*[[0,0],[10,10]] + 0.5*[[1,1],[9,9]] = [[0.5,0.5],[9.5,9.5]]
    torch.testing.assert_close(q.embed_avg, torch.tensor([[0.5, 0.5], [9.5, 9.5]]))
    # Laplace smoothing: n = 2.5; smoothed = (cs + 0.1) / (2.5 + 0.2) * 2.5 = [1.481481, 1.018519]
    smoothed = torch.tensor([1.6 / 2.7 * 2.5, 1.1 / 2.7 * 2.5])
    torch.testing.assert_close(q.codebook.data, torch.tensor([[0.5, 0.5], [9.5, 9.5]]) / smoothed[:, None])
    assert "codebook" not in out.losses  # EMA mode: no codebook term
    assert not q.codebook.requires_grad


def test_ema_codes_of_unused_entries_do_not_blow_up():
    q = VectorQuantizer(4, 2, codebook_update="ema", ema_decay=0.9)
    q.train()
    for _ in range(200):
        q(torch.zeros(1, 2, 2, 2) + 0.01)
    assert torch.isfinite(q.codebook).all() and float(q.codebook.abs().max()) < 1.0


def test_kmeans_with_fewer_vectors_than_codes():
    x = torch.tensor([[0.0, 0.0], [5.0, 5.0], [9.0, 1.0]])
    centres = kmeans(x, 8, iters=5)
    assert centres.shape == (8, 2) and torch.isfinite(centres).all()
    # every centre is one of the data points (nothing to average with so few vectors)
    assert all(any(torch.equal(c, p) for p in x) for c in centres)
    assert {tuple(c.tolist()) for c in centres} == {tuple(p.tolist()) for p in x}


def test_kmeans_init_runs_once_and_is_persisted():
    q = VectorQuantizer(4, 2, kmeans_init=True, kmeans_iters=10)
    assert not bool(q.initialized)
    q.train()
    clusters = torch.cat(
        [torch.randn(8, 2) * 0.01 + torch.tensor(c) for c in ([0, 0], [5, 5], [-5, 5], [5, -5])]
    )
    q(_latent(clusters.tolist()))
    assert bool(q.initialized)
    found = sorted(tuple(round(v) for v in c.tolist()) for c in q.codebook.data)
    assert found == sorted([(0, 0), (5, 5), (-5, 5), (5, -5)])
    restored = VectorQuantizer(4, 2, kmeans_init=True)
    restored.load_state_dict(q.state_dict())
    assert bool(restored.initialized)
    before = restored.codebook.data.clone()
    restored.train()
    restored(_latent([[100.0, 100.0]]))
    assert torch.equal(restored.codebook.data, before)  # no second k-means after loading


def test_dead_code_restart_replaces_unused_codes_and_resets_ema_state():
    q = VectorQuantizer(3, 2, codebook_update="ema", dead_code_threshold=0.5, usage_decay=0.5, ema_decay=0.9)
    q.codebook.data = torch.tensor([[0.0, 0.0], [100.0, 100.0], [-100.0, -100.0]])
    q.cluster_size.fill_(5.0)
    q.embed_avg.copy_(q.codebook.data * 5.0)  # consistent EMA state: code = sum / count
    q.usage.fill_(1.0)
    batch = [[0.1, 0.0], [0.0, 0.2], [0.3, 0.1], [0.2, 0.2]]
    q.train()
    q(_latent(batch))
    # usage: code 0 → 0.5 + 0.5*4 = 2.5; codes 1, 2 → 0.5 (not below the threshold yet)
    assert float(q.codebook.data[1].min()) > 90 and float(q.codebook.data[2].max()) < -90  # not restarted yet
    q(_latent(batch))  # now 0.25 < 0.5: codes 1 and 2 are restarted from the batch
    rows = torch.tensor(batch)
    for k in (1, 2):
        assert any(torch.equal(q.codebook.data[k], r) for r in rows)
        assert torch.equal(q.embed_avg[k], q.codebook.data[k])
        assert float(q.cluster_size[k]) == 1.0
        assert float(q.usage[k]) == 0.5


def test_chunked_search_matches_brute_force():
    x, codes = torch.randn(1000, 16), torch.randn(300, 16)
    brute = torch.cdist(x, codes).argmin(1)
    assert torch.equal(nearest_code(x, codes, chunk_size=77), brute)
    assert torch.equal(
        topk_codes(x, codes, 3, chunk_size=50), torch.cdist(x, codes).topk(3, largest=False).indices
    )


def test_cvq_first_step_pulls_every_unused_code_onto_data():
    q = ClusteredVectorQuantizer(4, 2, anchor="closest", contrastive=False)
    q.train()
    rows = [[1.0, 1.0], [2.0, 2.0], [-3.0, 1.0], [0.5, -2.0]]
    q(_latent(rows))
    # at step 0 the usage EMA is zero, so alpha ≈ exp(-1e-3) for unused codes; the used code keeps ~its value
    used = q.embed_prob > 0
    anchors_hit = [min(float((c - torch.tensor(r)).norm()) for r in rows) for c in q.codebook.data[~used]]
    assert max(anchors_hit) < 0.01


def test_cvq_contrastive_loss_hand_computed():
    sim = torch.tensor(
        [[1.0, 0.0], [0.0, 1.0], [0.5, 0.5], [-1.0, -1.0]]
    )  # N=4, K=2 → 2 positives, 2 negatives
    loss = cvq_contrastive_loss(sim, temperature=1.0)
    # code 0: sorted [1, .5, 0, -1]: pos = .75, negs = [0, -1]; code 1 identical by symmetry
    logits = torch.tensor([0.75, 0.0, -1.0])
    expected = -torch.log_softmax(logits, 0)[0]
    torch.testing.assert_close(loss, expected)


def test_ema_commitment_is_weighted_by_beta_even_with_legacy(monkeypatch, caplog):
    """EMA has no codebook term: the commitment term gets β = commitment_weight whatever ``legacy`` says."""
    import logging

    from lgvq_core.quantizers import vq as vq_module

    monkeypatch.setattr(vq_module, "_logged_ema_legacy", False)
    z = _latent([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    codes = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    # hand value: assigned codes [0,0], [0,0], [10,10] → squared errors 1, 1, 2 over 6 entries
    expected = 0.25 * (1.0 + 1.0 + 2.0) / 6.0
    with caplog.at_level(logging.INFO, logger=vq_module.__name__):
        for legacy in (False, True, True):
            q = VectorQuantizer(
                2, 2, codebook_update="ema", codebook_weight=1.0, commitment_weight=0.25, legacy=legacy
            )
            q.codebook.data = codes.clone()
            q.eval()
            out = q(z)
            assert set(out.losses) == {"commitment"}
            torch.testing.assert_close(out.losses["commitment"], torch.tensor(expected))
            assert q.commitment_term_weight == 0.25
    notes = [r for r in caplog.records if "no effect with codebook_update='ema'" in r.getMessage()]
    assert len(notes) == 1 and notes[0].levelno == logging.INFO  # logged once, not per instance


def test_grad_legacy_still_swaps_the_weights():
    z = _latent([[1.0, 0.0], [0.0, 1.0], [9.0, 9.0]])
    raw = (1.0 + 1.0 + 2.0) / 6.0
    for legacy, (codebook, commitment) in ((False, (1.0, 0.25)), (True, (0.25, 1.0))):
        q = VectorQuantizer(2, 2, codebook_weight=1.0, commitment_weight=0.25, legacy=legacy)
        q.codebook.data = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
        q.eval()
        out = q(z)
        torch.testing.assert_close(out.losses["codebook"], torch.tensor(codebook * raw))
        torch.testing.assert_close(out.losses["commitment"], torch.tensor(commitment * raw))

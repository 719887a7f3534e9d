"""Diagnostics: masked-word recall, word–code similarity MSE (incl. a base without LG), retrieval, heatmap,
CLI."""

from __future__ import annotations

import json

import pytest
import torch
from lg_helpers import captioned_batch, make_base

from lgvq_core.guidance import AlignmentWeights, GuidanceConfig, LanguageGuided
from lgvq_core.guidance.diagnostics import (
    fit_probe,
    image_text_retrieval,
    main,
    masked_word_recall,
    read_captions_jsonl,
    similarity_heatmap,
    word_code_similarity_mse,
)


def _trained(encoder, mode: str = "fixed", steps: int = 25) -> tuple[LanguageGuided, dict]:
    torch.manual_seed(0)
    config = GuidanceConfig(
        mode=mode, context_length=16, weights=AlignmentWeights(5.0, 1.0, 1.0), decoder_dropout=0.0
    )
    model = LanguageGuided(make_base("vqvae"), encoder, config)
    batch = captioned_batch(textured=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for step in range(steps):
        loss = model.training_losses(batch, step).total
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return model, batch


@pytest.fixture(scope="module")
def trained(minilm):
    return _trained(minilm)


def test_recall_counts_exact_hits(trained) -> None:
    """A caption with a single maskable token: biasing the head to it gives recall 1, to another token 0."""
    model, batch = trained
    tokenizer = model.text_encoder.tokenizer
    one = {"images": batch["images"][:1], "captions": ["circle"]}
    target, other = tokenizer.convert_tokens_to_ids(["circle", "square"])
    original = model.semantic.head.bias.detach().clone()
    try:
        with torch.no_grad():
            model.semantic.head.bias[target] += 1e4
        assert masked_word_recall(model, [one], num_masked=1) == {"recall_at_1": 1.0, "masked_tokens": 1}
        with torch.no_grad():
            model.semantic.head.bias[other] += 2e4
        assert masked_word_recall(model, [one], num_masked=3) == {"recall_at_1": 0.0, "masked_tokens": 1}
    finally:
        with torch.no_grad():
            model.semantic.head.bias.copy_(original)
    result = masked_word_recall(model, [batch], num_masked=3)
    assert result["masked_tokens"] == 12 and 0.0 <= result["recall_at_1"] <= 1.0


def test_retrieval_after_training(trained) -> None:
    model, batch = trained
    retrieval = image_text_retrieval(model, [batch], ks=(1, 5))
    assert retrieval["images"] == 4 and retrieval["top5"] == 1.0  # every caption is within the top 5 of 4
    assert retrieval["top1"] >= 0.75  # L_gsa was trained on exactly these pairs


def test_similarity_mse_matches_a_direct_computation(trained) -> None:
    model, batch = trained
    result = word_code_similarity_mse(model, [batch])
    # direct computation for the raw codes
    import torch.nn.functional as F

    from lgvq_core.losses.alignment import match_words_to_positions

    model.eval()
    with torch.no_grad():
        out = model.base(batch["images"])
        text = model.text_encoder.encode(batch["captions"])
        visual = model.visual(out.quant.quantized)
        index, _ = match_words_to_positions(text.token_states, visual[:, 1:])
        codes = out.quant.quantized.flatten(2).transpose(1, 2)
    total, pairs = 0.0, 0
    for b in range(4):
        keep = (text.attention_mask[b] & ~text.special_mask[b]).nonzero().flatten().tolist()
        for i in keep:
            for j in keep:
                if i == j:
                    continue
                w = float(F.cosine_similarity(text.token_states[b, i], text.token_states[b, j], dim=0))
                c = float(F.cosine_similarity(codes[b, index[b, i]], codes[b, index[b, j]], dim=0))
                total += (w - c) ** 2
                pairs += 1
    assert result["word_pairs"] == pairs
    assert result["mse_raw_codes"] == pytest.approx(total / pairs, abs=1e-5)
    assert 0.0 <= result["mse_projected_codes"] <= 4.0


def test_probe_scores_a_base_without_lg_and_leaves_it_unchanged(tiny_clip) -> None:  # any encoder works
    base = make_base("vqgan")
    before = {k: v.clone() for k, v in base.state_dict().items()}
    batch = captioned_batch(textured=True)
    probe = fit_probe(base, tiny_clip, [batch], steps=5, config=GuidanceConfig(context_length=12))
    result = word_code_similarity_mse(probe, [batch])
    assert result["word_pairs"] > 0 and result["mse_raw_codes"] >= 0
    for key, value in base.state_dict().items():
        torch.testing.assert_close(value, before[key], msg=key)


def test_heatmap_png(tmp_path, trained) -> None:
    model, batch = trained
    path = similarity_heatmap(model, batch["images"][0], batch["captions"][0], tmp_path / "fig" / "heat.png")
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


@pytest.fixture(scope="module")
def minilm_dir(minilm) -> str:
    return minilm.name


def _write_dataset(tmp_path, batch) -> None:
    from PIL import Image

    lines = []
    for i, (image, caption) in enumerate(zip(batch["images"], batch["captions"], strict=False)):
        array = ((image.permute(1, 2, 0) + 1) * 127.5).round().clamp(0, 255).byte().numpy()
        Image.fromarray(array).save(tmp_path / f"{i}.png")
        lines.append(json.dumps({"image": f"{i}.png", "caption": caption}))
    (tmp_path / "captions.jsonl").write_text("\n".join(lines) + "\n")


def test_cli_runs_every_command(tmp_path, minilm_dir, trained, capsys) -> None:
    model, batch = trained
    model.save_pretrained(tmp_path / "lg")
    _write_dataset(tmp_path, batch)
    data = str(tmp_path / "captions.jsonl")
    common = ["--checkpoint", str(tmp_path / "lg"), "--data", data, "--text-encoder", str(minilm_dir)]
    assert main(["recall", *common, "--out", str(tmp_path / "recall.json")]) == 0
    recall = json.loads((tmp_path / "recall.json").read_text())
    assert recall["mask1"]["masked_tokens"] == 4 and recall["mask3"]["masked_tokens"] == 12
    assert main(["retrieval", *common, "--out", str(tmp_path / "retrieval.json")]) == 0
    assert json.loads((tmp_path / "retrieval.json").read_text())["top5"] == 1.0
    capsys.readouterr()
    assert main(["similarity", *common]) == 0
    assert "mse_raw_codes" in json.loads(capsys.readouterr().out)
    assert main(["heatmap", *common, "--index", "2", "--png", str(tmp_path / "h.png")]) == 0
    assert (tmp_path / "h.png").is_file()
    # a plain base: only `similarity`, through the probe
    model.base.save_pretrained(tmp_path / "plain")
    plain = ["--checkpoint", str(tmp_path / "plain"), "--data", data, "--text-encoder", str(minilm_dir)]
    assert main(["similarity", *plain, "--probe-steps", "2", "--out", str(tmp_path / "sim.json")]) == 0
    assert json.loads((tmp_path / "sim.json").read_text())["probe_steps"] == 2
    with pytest.raises(SystemExit):
        main(["recall", *plain])


def test_bad_data_rows_name_file_line_and_field(tmp_path, trained, minilm_dir) -> None:
    model, _ = trained
    model.save_pretrained(tmp_path / "lg")
    (tmp_path / "bad.jsonl").write_text('{"image": "missing.png", "caption": "a red circle"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'image'"):
        main(
            [
                "retrieval",
                "--checkpoint",
                str(tmp_path / "lg"),
                "--data",
                str(tmp_path / "bad.jsonl"),
                "--text-encoder",
                str(minilm_dir),
            ]
        )


def _png(path, value: int) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", (8, 6), (value, 0, 255 - value)).save(path)


def test_read_captions_takes_the_imagefolder_metadata_form_and_the_other_keys(tmp_path) -> None:
    """``metadata.jsonl`` with ``file_name`` + ``text`` (Hugging Face imagefolder), beside the ``file`` /
    ``captions`` form of lgvq-data and the ``image`` / ``caption`` form; a folder finds its metadata.jsonl."""
    for i in range(3):
        _png(tmp_path / "images" / f"{i}.png", 60 * i)
    lines = [
        {"file_name": "images/0.png", "text": "a red circle", "label": 3},
        {"file": "images/1.png", "captions": ["two squares", "a second caption"]},
        {"image": "images/2.png", "caption": "a blue star"},
    ]
    (tmp_path / "metadata.jsonl").write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    batches = read_captions_jsonl(tmp_path, image_size=4, batch_size=2)
    assert [b["captions"] for b in batches] == [["a red circle", "two squares"], ["a blue star"]]
    assert batches[0]["images"].shape == (2, 3, 4, 4) and batches[1]["images"].shape == (1, 3, 4, 4)
    assert batches[0]["images"].min() >= -1.0 and batches[0]["images"].max() <= 1.0
    same = read_captions_jsonl(tmp_path / "metadata.jsonl", image_size=4, batch_size=2)
    torch.testing.assert_close(same[1]["images"], batches[1]["images"])


def test_read_captions_names_the_expected_keys(tmp_path) -> None:
    _png(tmp_path / "a.png", 0)
    (tmp_path / "bad.jsonl").write_text(
        json.dumps({"file_name": "a.png", "text": "fine"}) + "\n" + json.dumps({"file_name": "a.png"}) + "\n"
    )
    expected = (
        r"bad.jsonl:2: expected an image key \(file_name, file or image\) and a caption key "
        r"\(text, caption or captions\); found \['file_name'\]"
    )
    with pytest.raises(ValueError, match=expected):
        read_captions_jsonl(tmp_path / "bad.jsonl", image_size=4, batch_size=2)
    (tmp_path / "bad.jsonl").write_text(json.dumps({"file": "a.png", "captions": []}) + "\n")
    with pytest.raises(ValueError, match=r"bad.jsonl:1: field 'captions' must be a non-empty string"):
        read_captions_jsonl(tmp_path / "bad.jsonl", image_size=4, batch_size=2)
    with pytest.raises(FileNotFoundError, match="captions.jsonl or metadata.jsonl"):
        read_captions_jsonl(tmp_path, image_size=4, batch_size=2)

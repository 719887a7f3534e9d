"""Image→text retrieval on code shards: ranks, R@k, median rank and exact chance levels on hand examples; a
tiny real LanguageGuided model scored on codes against lgvq_core's image-based diagnostic and a hand ranking;
probe heads for a tokenizer without LG; refusals; the ``retrieve`` CLI."""

from __future__ import annotations

import itertools
import json
import shutil
from pathlib import Path

import pyarrow as pa
import pytest
import torch

from lgvq_core.config import EncoderConfig, LossConfig, QuantizerConfig
from lgvq_core.guidance import GuidanceConfig, LanguageGuided, load_text_encoder
from lgvq_core.guidance.diagnostics import image_text_retrieval
from lgvq_core.models import builders
from lgvq_data.build import build_shards
from lgvq_data.dataset import ShardDataset, collate
from lgvq_data.sources import synthetic
from lgvq_downstream.cli import main
from lgvq_downstream.codes import CodeShardError, encode_shards
from lgvq_downstream.tasks.common import CheckpointMismatchError, TaskDataError
from lgvq_downstream.tasks.retrieval import (
    RetrievalConfig,
    RetrievalDataset,
    build,
    caption_ranks,
    chance_median_rank,
    chance_recall,
    evaluate,
    median_rank,
    recall_at_k,
    similarity_matrix,
    train,
)

torch.set_num_threads(1)

SIDE, CONTEXT = 16, 16
LOSS = LossConfig(perceptual_weight=0.0, perceptual_net="none", disc_start=0, disc_layers=1, disc_channels=8)
PROBE = RetrievalConfig(probe_steps=6, probe_batch_size=8, probe_lr=1e-3, context_length=CONTEXT)


def _tokenizer():
    encoder = EncoderConfig(
        resolution=SIDE,
        ch=8,
        ch_mult=(1, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        z_channels=8,
        norm_groups=4,
    )
    torch.manual_seed(0)
    model = builders.vqgan(
        encoder=encoder, quantizer=QuantizerConfig(kind="vq", codebook_size=32, embed_dim=8), loss=LOSS
    )
    with torch.no_grad():  # spread the codes so the untrained encoder uses many of them
        model.quantizer.codebook.normal_(std=0.15)
    return model.eval()


@pytest.fixture(scope="module")
def text_encoder():
    return load_text_encoder("minilm", context_length=CONTEXT)


@pytest.fixture(scope="module")
def folders(text_encoder, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A tokenizer without LG (``tok``), the same tokenizer with LG heads (``lg``), 24 synthetic scenes
    (``shards``, half of them test) and their codes (``codes``)."""
    root = tmp_path_factory.mktemp("retrieval")
    tokenizer = _tokenizer()
    tokenizer.save_pretrained(root / "tok")
    torch.manual_seed(1)
    config = GuidanceConfig(mode="fixed", context_length=CONTEXT, visual_layers=1, decoder_layers=1)
    LanguageGuided(tokenizer, text_encoder, config).eval().save_pretrained(root / "lg")
    rows = synthetic.records(24, image_size=20, seed=5, val_fraction=0.0, test_fraction=0.5)
    build_shards(rows, root / "shards", source="synthetic", rows_per_shard=10)
    encode_shards(root / "lg", root / "shards", root / "codes", batch_size=16, progress=False)
    return {name: root / name for name in ("tok", "lg", "shards", "codes")}


def _rewrite_codes(src: Path, dst: Path, change) -> Path:
    """Copy a code-shard directory, passing every shard table through ``change(table) -> table``."""
    shutil.copytree(src, dst)
    for path in sorted(dst.glob("*.arrow")):
        with pa.OSFile(str(path), "rb") as source:  # read into memory: the file is replaced below
            table = change(pa.ipc.open_file(source).read_all())
        tmp = path.with_suffix(".tmp")
        with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
            writer.write_table(table)
        tmp.replace(path)
    return dst


# ---------------------------------------------------------------------------------------------- ranking


def test_ranks_recall_and_median_rank_match_a_hand_ranking() -> None:
    captions = ["a dog", "a cat", "a dog", "a bird"]
    similarity = torch.tensor(
        [
            [0.1, 0.9, 0.5, 0.2],  # cat, dog(2) → first own text at 2
            [0.3, 0.2, 0.1, 0.8],  # bird, dog, cat → 3
            [0.7, 0.1, 0.2, 0.3],  # dog(0) has the same text as image 2's caption → 1
            [0.4, 0.3, 0.2, 0.1],  # dog, cat, dog, bird → 4
        ]
    )
    ranks = caption_ranks(similarity, captions, captions)
    assert ranks.tolist() == [2, 3, 1, 4]
    assert [recall_at_k(ranks, k) for k in (1, 2, 3, 10)] == [0.25, 0.5, 0.75, 1.0]
    assert median_rank(ranks) == 2.0  # 0-based ranks 1, 2, 0, 3: median 1.5 → floor 1 → rank 2
    # Equal similarities keep gallery order.
    tied = caption_ranks(torch.zeros(2, 3), ["x", "y", "z"], ["z", "x"])
    assert tied.tolist() == [3, 1]
    with pytest.raises(ValueError, match="not in the gallery"):
        caption_ranks(torch.zeros(1, 2), ["x", "y"], ["w"])


def test_median_rank_hand_examples() -> None:
    assert median_rank(torch.tensor([1, 3, 2, 5])) == 2.0  # 0-based 0, 1, 2, 4 → 1.5 → 1 → 2
    assert median_rank(torch.tensor([4, 1, 7])) == 4.0
    assert median_rank(torch.tensor([6])) == 6.0


def test_chance_levels_with_duplicate_captions_match_hand_values_and_enumeration() -> None:
    captions = ["a", "a", "b", "c"]
    # k=1: "a" images hit with 2/4, "b"/"c" with 1/4 → 0.375. k=2: "a" misses with (2/4)(1/3) → 5/6,
    # "b"/"c" miss with (3/4)(2/3) → 1/2 → (2·5/6 + 2·1/2)/4 = 2/3.
    assert chance_recall(captions, 1) == pytest.approx(0.375)
    assert chance_recall(captions, 2) == pytest.approx(2 / 3)
    assert chance_recall(captions, 10) == pytest.approx(1.0)
    assert chance_median_rank(captions) == 2
    # Brute force over every ranking of the gallery (the same for each image).
    for k in (1, 2, 3):
        hits = [
            sum(any(captions[j] == captions[i] for j in order[:k]) for i in range(4)) / 4
            for order in itertools.permutations(range(4))
        ]
        assert chance_recall(captions, k) == pytest.approx(sum(hits) / len(hits))
    assert chance_median_rank(["p", "q", "r", "s", "t"]) == 3  # R@r = r/5


# ---------------------------------------------------------------------------------------------- LG heads


def test_lg_heads_on_codes_agree_with_the_image_diagnostic_and_a_hand_ranking(
    folders: dict[str, Path], text_encoder
) -> None:
    model = build(folders["lg"], text_encoder=text_encoder)
    assert model.heads == "lg" and model.trained
    test_set = RetrievalDataset(folders["codes"], "test", seed=0)
    assert len(test_set) == 12
    result = evaluate(model, test_set)
    # lgvq_core's diagnostic on the *images* of the same split (same seeded caption choice, epoch 0).
    images = ShardDataset(folders["shards"], "test", image_size=SIDE, seed=0, annotations=False)
    batches = [collate([images[i] for i in range(len(images))])]
    assert batches[0]["captions"] == test_set.captions
    core = image_text_retrieval(model.lg, batches, ks=(1, 5))
    assert (result["recall@1"], result["recall@5"]) == (core["top1"], core["top5"])
    assert result["chance"]["recall@1"] == pytest.approx(core["chance_top1"])
    # By hand from the heads' own embeddings: rank = 1 + number of captions strictly before the first
    # caption with the image's text.
    with torch.no_grad():
        quantized = model.lg.base(batches[0]["images"]).quant.quantized
        vis = torch.nn.functional.normalize(
            model.lg.cls_to_sentence(model.lg.visual(quantized)[:, 0]), dim=-1
        )
        txt = torch.nn.functional.normalize(model.lg.text_features(test_set.captions).sentence, dim=-1)
    similarity = vis @ txt.t()
    ranks = []
    for i, row in enumerate(similarity.tolist()):
        order = sorted(range(len(row)), key=lambda j: -row[j])
        ranks.append(1 + next(p for p, j in enumerate(order) if test_set.captions[j] == test_set.captions[i]))
    assert result["recall@10"] == pytest.approx(sum(r <= 10 for r in ranks) / len(ranks))
    assert result["median_rank"] == median_rank(torch.tensor(ranks))
    assert result["mean_rank"] == pytest.approx(sum(ranks) / len(ranks))
    assert len(result["examples"]) == 8 and len(result["examples"][0]["top"]) == 5


# ---------------------------------------------------------------------------------------------- probe


def test_probe_for_a_tokenizer_without_lg_is_fitted_saved_and_reloaded(
    folders: dict[str, Path], text_encoder, tmp_path: Path
) -> None:
    model = build(folders["tok"], PROBE, text_encoder=text_encoder)
    assert (model.heads, model.trained, model.text_encoder_spec) == ("probe", False, "minilm")
    test_set = RetrievalDataset(folders["codes"], "test")
    with pytest.raises(ValueError, match="not fitted"):
        evaluate(model, test_set, PROBE)
    train_set = RetrievalDataset(folders["codes"], "train", limit=PROBE.probe_steps * PROBE.probe_batch_size)
    history = train(model, train_set, PROBE)
    assert (history["steps"], history["batch_size"], history["images"]) == (6, 8, 12)
    assert history["loss_after"] < history["loss_before"]
    result = evaluate(model, test_set, PROBE)
    assert result["heads"] == "probe" and result["probe"]["steps"] == 6
    assert 0.0 <= result["recall@1"] <= result["recall@5"] <= result["recall@10"] <= 1.0
    model.save_pretrained(tmp_path / "probe")
    again = build(tmp_path / "probe", PROBE, text_encoder=text_encoder)
    assert (again.heads, again.trained, again.probe) == ("probe", True, model.probe)
    assert torch.equal(similarity_matrix(again, test_set), similarity_matrix(model, test_set))


# ---------------------------------------------------------------------------------------------- refusals


def test_codes_of_another_tokenizer_are_refused_naming_both(
    folders: dict[str, Path], text_encoder, tmp_path: Path
) -> None:
    model = build(folders["lg"], text_encoder=text_encoder)
    other = tmp_path / "other"
    shutil.copytree(folders["codes"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    ours = manifest["tokenizer"]["config_sha256"]
    manifest["tokenizer"]["config_sha256"] = "e" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(CheckpointMismatchError) as info:
        evaluate(model, RetrievalDataset(other, "test"))
    assert f"config_sha256: checkpoint {ours}, code shards {'e' * 64}" in str(info.value)


def test_missing_or_empty_captions_name_the_field(folders: dict[str, Path], tmp_path: Path) -> None:
    dropped = _rewrite_codes(folders["codes"], tmp_path / "dropped", lambda t: t.drop_columns(["captions"]))
    with pytest.raises(CodeShardError, match="no column 'captions'"):
        RetrievalDataset(dropped, "test")

    def blank_first_row(table: pa.Table) -> pa.Table:
        captions = table.column("captions").to_pylist()
        if table.column("id")[0].as_py() != "synthetic-5-0000000":  # only the first shard's first row
            return table
        captions[0] = [" "]
        index = table.schema.get_field_index("captions")
        return table.set_column(index, table.schema.field(index), pa.array(captions, pa.list_(pa.string())))

    blank = _rewrite_codes(folders["codes"], tmp_path / "blank", blank_first_row)
    with pytest.raises(TaskDataError) as info:
        RetrievalDataset(blank, None)
    assert (Path(info.value.file).name, info.value.row, info.value.field) == (
        "shard-00000.arrow",
        0,
        "captions[0]",
    )
    skipped = RetrievalDataset(blank, None, on_error="skip")
    assert len(skipped) == 23 and skipped.report()["bad_input"]["by_field"] == {"captions": 1}


# ---------------------------------------------------------------------------------------------- CLI


def test_cli_retrieves_with_lg_heads_and_with_a_probe(
    folders: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(
            [
                "retrieve",
                "--codes",
                str(folders["codes"]),
                "--model",
                str(folders["lg"]),
                "--out",
                str(tmp_path / "lg"),
            ]
        )
        == 0
    )
    report = json.loads((tmp_path / "lg" / "retrieval.json").read_text())
    assert (tmp_path / "lg" / "examples.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["heads"] == "lg" and report["images"] == 12
    assert {"recall@1", "recall@5", "recall@10", "median_rank"} <= set(report)
    assert report["chance"]["recall@10"] == pytest.approx(
        chance_recall(RetrievalDataset(folders["codes"], "test").captions, 10)
    )

    probe_args = ["--probe-steps", "2", "--probe-batch-size", "4", "--save-probe", str(tmp_path / "probe")]
    assert (
        main(["retrieve", "--codes", str(folders["codes"]), "--model", str(folders["tok"]), *probe_args]) == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["heads"] == "probe" and printed["probe_history"]["images"] == 8
    assert (tmp_path / "probe" / "retrieval.json").is_file()

    other = tmp_path / "other"
    shutil.copytree(folders["codes"], other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["tokenizer"]["config_sha256"] = "e" * 64
    (other / "manifest.json").write_text(json.dumps(manifest))
    assert main(["retrieve", "--codes", str(other), "--model", str(folders["lg"])]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "lgvq-downstream retrieve: error:" in err[0] and "e" * 64 in err[0]

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from core_helpers import make_tokenizer

from lgvq_core.cli import main


def test_info_encode_decode_round_trip(tmp_path, images, capsys):
    tok = make_tokenizer("vq").eval()
    model = tok.save_pretrained(tmp_path / "tok")
    assert main(["info", str(model)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["base"] == "vqgan" and info["codebook_size"] == 32 and info["grid_size"] == [8, 8]
    np.save(tmp_path / "img.npy", images.numpy())
    assert (
        main(["encode", "--model", str(model), str(tmp_path / "img.npy"), "--out", str(tmp_path / "t.npy")])
        == 0
    )
    tokens = np.load(tmp_path / "t.npy")
    assert tokens.shape == (2, 8, 8) and np.array_equal(tokens, tok.encode(images).numpy())
    assert (
        main(["decode", "--model", str(model), str(tmp_path / "t.npy"), "--out", str(tmp_path / "r.npy")])
        == 0
    )
    with torch.no_grad():
        np.testing.assert_array_equal(
            np.load(tmp_path / "r.npy"), tok.decode(torch.from_numpy(tokens)).numpy()
        )
    pytest.importorskip("PIL")
    np.save(tmp_path / "one.npy", tokens[:1])
    assert (
        main(["decode", "--model", str(model), str(tmp_path / "one.npy"), "--out", str(tmp_path / "r.png")])
        == 0
    )
    assert (tmp_path / "r.png").stat().st_size > 0

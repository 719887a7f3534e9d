"""Fréchet distance / KID of generated vs reference images: on real synthetic scenes the two halves of one set
are far closer than uniform noise is to either; the protocol names the network, its weights and the counts;
an FID weights file (a tiny TorchScript stand-in with the Inception interface) is recorded by sha256 and
format."""

from __future__ import annotations

import hashlib
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn

from lgvq_data.sources import synthetic
from lgvq_data.transforms import decode_image
from lgvq_downstream.metrics.sample_fd import SampleFrechet, sample_frechet

FD_SIZE = 96  # EfficientNet-Lite0 input side: small to keep the test fast


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def scenes() -> Tensor:
    """128 synthetic scenes, uint8 128×3×32×32."""
    rows = synthetic.records(128, image_size=32, seed=11)
    return torch.from_numpy(np.stack([np.asarray(decode_image(r["image"])) for r in rows])).permute(
        0, 3, 1, 2
    )


def test_halves_of_real_images_are_far_closer_than_noise(scenes: Tensor) -> None:
    first, second = scenes[:64], scenes[64:]
    noise = torch.rand(64, 3, 32, 32, generator=torch.Generator().manual_seed(0))  # uniform in [0, 1]
    metric = SampleFrechet(first, reference_split="train", fd_size=FD_SIZE, kid_subsets=20)
    real = metric(second)
    fake = metric(noise, value_range=(0.0, 1.0))
    assert real["fd_name"] == fake["fd_name"] == "FD-EffLite0"
    # measured: FD 3980 vs 17984, KID -30 vs 797 (64 vs 64 images at 96 px)
    assert real["fd"] < 0.4 * fake["fd"], (real["fd"], fake["fd"])
    assert real["kid"] < 0.1 * fake["kid"], (real["kid"], fake["kid"])
    # the reference statistics survive between calls: the same set scores the same again
    assert metric.distance(second) == pytest.approx(real["fd"], rel=1e-6)
    # the same images as floats in [-1, 1] (a tokenizer's decode) give the same features
    assert metric(second.float() / 127.5 - 1.0)["fd"] == pytest.approx(real["fd"], rel=1e-4)


def test_protocol_records_counts_split_and_network(scenes: Tensor) -> None:
    out = sample_frechet(scenes[:10], scenes[10:], reference_split="test", fd_size=FD_SIZE, kid_subsets=5)
    protocol = out["protocol"]
    assert protocol["generated_images"] == 10
    assert protocol["reference_images"] == 118
    assert protocol["reference_split"] == "test"
    assert protocol["input_size"] == FD_SIZE
    network = protocol["feature_network"]
    assert network["name"] == "FD-EffLite0"
    assert len(network["sha256"]) == 64 and network["weights"]
    assert "10 images" in protocol["kid"]
    assert out["FD-EffLite0"] == out["fd"] and out["kid_name"] == "KID-EffLite0"


class _TinyInception(nn.Module):
    """The TorchScript Inception interface (uint8 NCHW, ``return_features``) → 2048 features."""

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor:
        x = x.float() / 255.0
        pooled = torch.nn.functional.adaptive_avg_pool2d(x, 8).flatten(1)  # N×192
        return torch.cat([pooled] * 11, dim=1)[:, :2048]


def test_fid_weights_file_is_recorded_by_sha256_and_format(scenes: Tensor, tmp_path: Path) -> None:
    path = tmp_path / "inception-2015-12-05.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.script(_TinyInception()).save(str(path))
    metric = SampleFrechet(scenes[:24], fid_weights=path, kid_subsets=5)
    out = metric(scenes[24:48])
    network = out["protocol"]["feature_network"]
    assert out["fd_name"] == "FID-InceptionV3" and out["kid_name"] == "KID-InceptionV3"
    assert network["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert network["weights"] == path.name
    assert network["format"].startswith("TorchScript")
    assert out["protocol"]["input_size"] == 299
    assert np.isfinite(out["fd"])


def test_too_few_or_misshaped_images_are_refused(scenes: Tensor) -> None:
    with pytest.raises(ValueError, match="at least 2 reference images, got 1"):
        SampleFrechet(scenes[:1], fd_size=FD_SIZE)
    metric = SampleFrechet(scenes[:8], fd_size=FD_SIZE, kid_subsets=2)
    with pytest.raises(ValueError, match="at least 2 generated images, got 1"):
        metric(scenes[8:9])
    with pytest.raises(ValueError, match=r"generated images must be B×3×H×W, got shape \(4, 32, 32\)"):
        metric(scenes[8:12, 0])

"""FID Inception-v3 from a local weights file, without torchvision: the pure-torch port and the TorchScript
wrapper, loaded through ``load_inception_features`` from files written here with random (test-only) weights.

The port runs at 299×299 whatever the input size, so forwards of it are kept to a few images.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.metrics.frechet import FrechetDistance
from lgvq_core.metrics.inception import (
    FIDInceptionV3,
    TorchScriptInception,
    is_torchscript_archive,
    load_inception_features,
)

# The stand-in archive is written with torch.jit.script / torch.jit.save, deprecated since torch 2.9.
pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit:DeprecationWarning")


def _random_port(seed: int = 0) -> FIDInceptionV3:
    """The port with He-initialised convs and random batch-norm statistics, so activations keep their scale
    through the ~50 layers (the default init shrinks them towards 0)."""
    torch.manual_seed(seed)
    model = FIDInceptionV3()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.1, 0.1)
            module.running_mean.uniform_(-0.1, 0.1)
            module.running_var.uniform_(0.5, 1.5)
    return model


class _StandInInception(nn.Module):
    """Same call convention as StyleGAN2-ADA's ``inception-2015-12-05.pt``: uint8 NCHW in, (N, 2048) pool
    features with ``return_features=True``, (N, 1008) logits otherwise."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Linear(3 * 4 * 4, 2048)
        self.logits = nn.Linear(2048, 1008)

    def forward(self, x: Tensor, return_features: bool = False) -> Tensor:
        assert x.dtype == torch.uint8, "the archive takes uint8 images"
        pooled = F.adaptive_avg_pool2d(x.float() / 127.5 - 1.0, 4).flatten(1)
        features = torch.relu(self.features(pooled))
        return features if return_features else self.logits(features)


@pytest.fixture(scope="module")
def port() -> FIDInceptionV3:
    return _random_port()


@pytest.fixture(scope="module")
def port_file(port: FIDInceptionV3, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The port's weights in pytorch-fid's layout, with the classifier pytorch-fid's file also holds."""
    state = dict(port.state_dict())
    state["fc.weight"], state["fc.bias"] = torch.randn(1008, 2048), torch.randn(1008)
    path = tmp_path_factory.mktemp("inception") / "pt_inception-random.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="module")
def torchscript_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(1)
    path = tmp_path_factory.mktemp("inception") / "inception-random.pt"
    torch.jit.save(torch.jit.script(_StandInInception()), str(path))
    return path


def test_port_has_inception_v3_size_and_pytorch_fid_keys(port: FIDInceptionV3) -> None:
    keys = port.state_dict().keys()
    assert sum(p.numel() for p in port.parameters()) == 21_785_568  # torchvision's 27.16M − fc − AuxLogits
    assert sum(k.endswith(".conv.weight") for k in keys) == 94
    for key in (
        "Conv2d_1a_3x3.conv.weight",
        "Mixed_5b.branch1x1.conv.weight",
        "Mixed_6e.branch7x7dbl_5.bn.running_var",
        "Mixed_7a.branch7x7x3_4.conv.weight",
        "Mixed_7c.branch3x3dbl_3b.bn.bias",
    ):
        assert key in keys
    assert not any(p.requires_grad for p in port.parameters())
    assert not port.train().training  # frozen: always in eval mode


def test_state_dict_file_loads_into_the_port(port: FIDInceptionV3, port_file: Path) -> None:
    assert not is_torchscript_archive(port_file)
    loaded = load_inception_features(port_file)
    assert isinstance(loaded, FIDInceptionV3)
    assert (loaded.name, loaded.num_features) == ("FID-InceptionV3", 2048)
    images = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        features = loaded(images)
        again = loaded(images)
        reference = port(images)
    assert features.shape == (2, 2048) and features.dtype == torch.float32
    assert torch.isfinite(features).all() and features.abs().sum() > 0
    torch.testing.assert_close(features, again, rtol=0, atol=0)
    torch.testing.assert_close(features, reference)


def test_torchscript_archive_loads_and_takes_unit_range_floats(torchscript_file: Path) -> None:
    assert is_torchscript_archive(torchscript_file)
    loaded = load_inception_features(torchscript_file)
    assert isinstance(loaded, TorchScriptInception)
    assert (loaded.name, loaded.num_features) == ("FID-InceptionV3", 2048)
    images = torch.rand(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    features = loaded(images)
    assert features.shape == (8, 2048) and features.dtype == torch.float32
    raw = torch.jit.load(str(torchscript_file))
    expected = raw((images * 255).round().to(torch.uint8), return_features=True)
    torch.testing.assert_close(features, expected)


def test_fid_through_the_frechet_metric(port_file: Path, torchscript_file: Path) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = (torch.rand(3, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))  # [-1, 1], as the metric takes
    fid = FrechetDistance(load_inception_features(port_file))
    fid.update(a, real=True)
    fid.update(b, real=False)
    value = fid.compute()["FID-InceptionV3"]
    assert math.isfinite(value) and value > 0

    script = load_inception_features(torchscript_file)
    c, d = (torch.rand(8, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
    different, same = FrechetDistance(script), FrechetDistance(script)
    different.update(c, real=True)
    different.update((d + 0.5).clamp(-1, 1), real=False)
    same.update(c, real=True)
    same.update(c, real=False)
    gap, zero = different.compute()["FID-InceptionV3"], same.compute()["FID-InceptionV3"]
    assert math.isfinite(gap) and gap > 0
    assert abs(zero) < 1e-6 * gap


def test_other_files_are_refused_by_name(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a weights file\x00\x01")
    with pytest.raises(ValueError, match="garbage.pth.*neither a TorchScript archive nor a torch state dict"):
        load_inception_features(garbage)
    other = tmp_path / "other.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, other)
    with pytest.raises(ValueError, match=r"other.pth: not the FID Inception-v3 state dict.*missing keys"):
        load_inception_features(other)
    bad_shape = tmp_path / "bad_shape.pth"
    state = dict(FIDInceptionV3().state_dict())
    state["Conv2d_1a_3x3.conv.weight"] = torch.zeros(1)
    torch.save(state, bad_shape)
    with pytest.raises(ValueError, match=r"bad_shape.pth.*mis-shaped Conv2d_1a_3x3.conv.weight"):
        load_inception_features(bad_shape)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        load_inception_features(tmp_path / "absent.pth")

"""FID Inception-v3 (TensorFlow's 2015-12-05 graph) from a local weights file, with no torchvision.

Two file formats are read, told apart by their content, not their name:

* **pytorch-fid state dict** (``pt_inception-2015-12-05-6726825d.pth``): loaded into ``FIDInceptionV3``, a
  pure-torch port of pytorch-fid's FID variant of Inception-v3 (TF's average pools that skip the zero padding,
  a max pool in the last mixed block). Input resized to 299×299 (bilinear, ``align_corners=False``) and scaled
  to [-1, 1]; output the 2048-d pool3 features. The classifier (``fc.*``) and auxiliary head
  (``AuxLogits.*``) of the file are ignored.
* **TorchScript archive** of StyleGAN2-ADA / clean-fid (``inception-2015-12-05.pt``): ``torch.jit.load`` and
  called as ``net(images_uint8_nchw, return_features=True)`` (it resizes to 299 itself) by
  ``TorchScriptInception``.

``load_inception_features(path)`` returns either one. Both map (N, 3, H, W) float in [0, 1] to (N, 2048)
float32 features and carry ``name = "FID-InceptionV3"``, ``num_features = 2048``, ``weights_format`` and
``input`` (the input handling, for a protocol), so they plug into
``lgvq_core.metrics.frechet.FrechetDistance`` (torchmetrics' custom-feature interface).
"""

from __future__ import annotations

import logging
import warnings
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lgvq_core.models.feature_nets import FrozenFeatureNet

__all__ = [
    "FIDInceptionV3",
    "TorchScriptInception",
    "load_inception_features",
    "is_torchscript_archive",
    "INCEPTION_SIZE",
]

logger = logging.getLogger(__name__)

INCEPTION_SIZE = 299
# Keys of pytorch-fid's weights file that the feature extractor does not use.
_IGNORED_PREFIXES = ("fc.", "AuxLogits.")


class _ConvBN(nn.Module):
    """Bias-free conv + batch norm (eps 1e-3, as in TF) + ReLU; state keys ``conv.*``, ``bn.*``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int | tuple[int, int],
        stride: int = 1,
        padding: int | tuple[int, int] = 0,
    ) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride=stride, padding=padding, bias=False)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: Tensor) -> Tensor:
    """3×3 stride-1 average pool that, like TF's, leaves the zero padding out of the average."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class _MixedA(nn.Module):
    """35×35 block (Mixed_5b/c/d): 1×1, 5×5, double 3×3 and pooled branches; 224 + pool_features channels."""

    def __init__(self, in_channels: int, pool_features: int) -> None:
        super().__init__()
        self.branch1x1 = _ConvBN(in_channels, 64, 1)
        self.branch5x5_1 = _ConvBN(in_channels, 48, 1)
        self.branch5x5_2 = _ConvBN(48, 64, 5, padding=2)
        self.branch3x3dbl_1 = _ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, padding=1)
        self.branch_pool = _ConvBN(in_channels, pool_features, 1)

    def forward(self, x: Tensor) -> Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class _ReductionB(nn.Module):
    """35→17 grid reduction (Mixed_6a): stride-2 3×3, double 3×3 and max-pool branches; 480 + in channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3 = _ConvBN(in_channels, 384, 3, stride=2)
        self.branch3x3dbl_1 = _ConvBN(in_channels, 64, 1)
        self.branch3x3dbl_2 = _ConvBN(64, 96, 3, padding=1)
        self.branch3x3dbl_3 = _ConvBN(96, 96, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _MixedC(nn.Module):
    """17×17 block (Mixed_6b–e) with factorised 7×7 convolutions; 768 channels."""

    def __init__(self, in_channels: int, channels_7x7: int) -> None:
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = _ConvBN(in_channels, 192, 1)
        self.branch7x7_1 = _ConvBN(in_channels, c7, 1)
        self.branch7x7_2 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7_3 = _ConvBN(c7, 192, (7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = _ConvBN(in_channels, c7, 1)
        self.branch7x7dbl_2 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = _ConvBN(c7, c7, (1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = _ConvBN(c7, c7, (7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = _ConvBN(c7, 192, (1, 7), padding=(0, 3))
        self.branch_pool = _ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        d7 = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            d7 = layer(d7)
        return torch.cat([self.branch1x1(x), b7, d7, self.branch_pool(_tf_avg_pool(x))], 1)


class _ReductionD(nn.Module):
    """17→8 grid reduction (Mixed_7a); 512 + in channels."""

    def __init__(self, in_channels: int) -> None:
        super().__init__()
        self.branch3x3_1 = _ConvBN(in_channels, 192, 1)
        self.branch3x3_2 = _ConvBN(192, 320, 3, stride=2)
        self.branch7x7x3_1 = _ConvBN(in_channels, 192, 1)
        self.branch7x7x3_2 = _ConvBN(192, 192, (1, 7), padding=(0, 3))
        self.branch7x7x3_3 = _ConvBN(192, 192, (7, 1), padding=(3, 0))
        self.branch7x7x3_4 = _ConvBN(192, 192, 3, stride=2)

    def forward(self, x: Tensor) -> Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_1(x)
        for layer in (self.branch7x7x3_2, self.branch7x7x3_3, self.branch7x7x3_4):
            b7 = layer(b7)
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class _MixedE(nn.Module):
    """8×8 block (Mixed_7b/c) with split 1×3 / 3×1 outputs; 2048 channels.

    ``max_pool``: the pool branch of FID's last block (Mixed_7c) is a 3×3 max pool, not TF's average pool.
    """

    def __init__(self, in_channels: int, *, max_pool: bool) -> None:
        super().__init__()
        self.max_pool = max_pool
        self.branch1x1 = _ConvBN(in_channels, 320, 1)
        self.branch3x3_1 = _ConvBN(in_channels, 384, 1)
        self.branch3x3_2a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3_2b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = _ConvBN(in_channels, 448, 1)
        self.branch3x3dbl_2 = _ConvBN(448, 384, 3, padding=1)
        self.branch3x3dbl_3a = _ConvBN(384, 384, (1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = _ConvBN(384, 384, (3, 1), padding=(1, 0))
        self.branch_pool = _ConvBN(in_channels, 192, 1)

    def forward(self, x: Tensor) -> Tensor:
        s = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(s), self.branch3x3_2b(s)], 1)
        d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        d3 = torch.cat([self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d)], 1)
        pooled = F.max_pool2d(x, kernel_size=3, stride=1, padding=1) if self.max_pool else _tf_avg_pool(x)
        return torch.cat([self.branch1x1(x), b3, d3, self.branch_pool(pooled)], 1)


class FIDInceptionV3(FrozenFeatureNet):
    """FID Inception-v3: (N, 3, H, W) float in [0, 1] → (N, 2048) float32 pool3 features.

    Module names (and so ``state_dict`` keys, e.g. ``Conv2d_1a_3x3.conv.weight``,
    ``Mixed_5b.branch1x1.bn.running_var``) follow pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth``.
    Built with random weights; ``from_state_dict`` loads a file's. Frozen, always in eval mode.
    """

    name = "FID-InceptionV3"
    num_features = 2048
    weights_format = "pytorch-fid state dict"
    input = (
        "float [0, 1], bilinear resize to 299×299 (align_corners=False), scaled to [-1, 1]; "
        "pool3 2048-d features (pure-torch port of pytorch-fid's FID Inception-v3)"
    )

    def __init__(self) -> None:
        super().__init__()
        self.Conv2d_1a_3x3 = _ConvBN(3, 32, 3, stride=2)
        self.Conv2d_2a_3x3 = _ConvBN(32, 32, 3)
        self.Conv2d_2b_3x3 = _ConvBN(32, 64, 3, padding=1)
        self.Conv2d_3b_1x1 = _ConvBN(64, 80, 1)
        self.Conv2d_4a_3x3 = _ConvBN(80, 192, 3)
        self.Mixed_5b = _MixedA(192, pool_features=32)
        self.Mixed_5c = _MixedA(256, pool_features=64)
        self.Mixed_5d = _MixedA(288, pool_features=64)
        self.Mixed_6a = _ReductionB(288)
        self.Mixed_6b = _MixedC(768, channels_7x7=128)
        self.Mixed_6c = _MixedC(768, channels_7x7=160)
        self.Mixed_6d = _MixedC(768, channels_7x7=160)
        self.Mixed_6e = _MixedC(768, channels_7x7=192)
        self.Mixed_7a = _ReductionD(768)
        self.Mixed_7b = _MixedE(1280, max_pool=False)
        self.Mixed_7c = _MixedE(2048, max_pool=True)
        self.freeze()

    def forward(self, images01: Tensor) -> Tensor:
        x = F.interpolate(
            images01.float(), size=(INCEPTION_SIZE, INCEPTION_SIZE), mode="bilinear", align_corners=False
        )
        x = 2.0 * x - 1.0
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
        x = F.max_pool2d(x, kernel_size=3, stride=2)
        for block in (
            self.Mixed_5b,
            self.Mixed_5c,
            self.Mixed_5d,
            self.Mixed_6a,
            self.Mixed_6b,
            self.Mixed_6c,
            self.Mixed_6d,
            self.Mixed_6e,
            self.Mixed_7a,
            self.Mixed_7b,
            self.Mixed_7c,
        ):
            x = block(x)
        return x.mean(dim=(2, 3))

    @classmethod
    def from_state_dict(
        cls, state: Mapping[str, Tensor], source: str | Path = "<state dict>"
    ) -> FIDInceptionV3:
        """The network with the weights of ``state`` (pytorch-fid's key layout).

        ``fc.*`` and ``AuxLogits.*`` are ignored, a missing ``num_batches_tracked`` is allowed; any other
        missing, extra or mis-shaped key raises ``ValueError`` naming ``source``.
        """
        model = cls()
        own = model.state_dict()
        given = {k: v for k, v in state.items() if not k.startswith(_IGNORED_PREFIXES)}
        missing = sorted(k for k in own if k not in given and not k.endswith("num_batches_tracked"))
        unexpected = sorted(k for k in given if k not in own)
        misshaped = sorted(
            f"{k} {tuple(getattr(given[k], 'shape', ()))} (expected {tuple(own[k].shape)})"
            for k in given
            if k in own and (not isinstance(given[k], Tensor) or given[k].shape != own[k].shape)
        )
        if missing or unexpected or misshaped:
            problems = [
                f"{len(items)} {what} (e.g. {', '.join(items[:3])})"
                for what, items in (("missing keys", missing), ("unexpected keys", unexpected))
                if items
            ] + [f"mis-shaped {m}" for m in misshaped[:3]]
            raise ValueError(
                f"{source}: not the FID Inception-v3 state dict (pytorch-fid's pt_inception-2015-12-05 "
                f"layout, keys like 'Conv2d_1a_3x3.conv.weight'): {'; '.join(problems)}"
            )
        model.load_state_dict(given, strict=False)
        return model


class TorchScriptInception(FrozenFeatureNet):
    """A TorchScript Inception (StyleGAN2-ADA / clean-fid ``inception-2015-12-05.pt``) as a feature module.

    (N, 3, H, W) float in [0, 1] → rounded to uint8 → ``net(x, return_features=True)`` → (N, 2048) float32.
    """

    name = "FID-InceptionV3"
    num_features = 2048
    weights_format = "TorchScript (StyleGAN2-ADA / clean-fid)"
    input = (
        "uint8 [0, 255] (rounded from [0, 1]), resized to 299×299 inside the TorchScript network; "
        "pool3 2048-d features"
    )

    def __init__(self, net: torch.jit.ScriptModule) -> None:
        super().__init__()
        self.net = net
        self.freeze()

    def forward(self, images01: Tensor) -> Tensor:
        images = (images01.float().clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
        return self.net(images, return_features=True).float()


def is_torchscript_archive(path: str | Path) -> bool:
    """Whether ``path`` is a TorchScript zip archive (it holds ``constants.pkl`` and ``code/``; a
    ``torch.save`` archive holds neither)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(n.endswith("constants.pkl") for n in names) and any("/code/" in n for n in names)


def _read_state_dict(path: Path) -> Mapping[str, Tensor]:
    """A ``torch.save``d mapping of name → tensor (tensors only, ``weights_only``); ``{"state_dict": ...}``
    is unwrapped."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # any unreadable file gets the same clear error
        raise ValueError(
            f"{path}: neither a TorchScript archive nor a torch state dict of the FID Inception-v3 "
            f"({type(err).__name__}: {str(err)[:200]})"
        ) from err
    if isinstance(state, Mapping) and isinstance(state.get("state_dict"), Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        raise ValueError(
            f"{path}: holds a {type(state).__name__}, not a state dict of the FID Inception-v3 "
            "(pytorch-fid's pt_inception-2015-12-05) nor a TorchScript archive"
        )
    return state


def load_inception_features(path: str | Path) -> FIDInceptionV3 | TorchScriptInception:
    """The FID Inception-v3 feature module of a local weights file, format detected from the content.

    A TorchScript archive → ``TorchScriptInception`` (checked to give (1, 2048) features); otherwise a
    ``torch.save``d pytorch-fid state dict → ``FIDInceptionV3``. Raises ``FileNotFoundError`` if ``path`` is
    not a file, ``ValueError`` naming it if it is neither format or its keys do not match.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: Inception weights file not found")
    if is_torchscript_archive(path):
        try:
            # torch ≥ 2.9 deprecates TorchScript, but the file format is TorchScript.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                net = torch.jit.load(str(path), map_location="cpu")
        except Exception as err:
            raise ValueError(f"{path}: a TorchScript archive torch.jit.load cannot read ({err})") from err
        module = TorchScriptInception(net)
        probe = torch.full((1, 3, INCEPTION_SIZE, INCEPTION_SIZE), 0.5)
        try:
            with torch.no_grad():
                shape = tuple(module(probe).shape)
        except Exception as err:
            raise ValueError(
                f"{path}: the TorchScript module does not take net(uint8 NCHW, return_features=True) ({err})"
            ) from err
        if shape != (1, TorchScriptInception.num_features):
            raise ValueError(f"{path}: the TorchScript module gives features of shape {shape}, not (1, 2048)")
        logger.info("FID Inception-v3: TorchScript archive %s", path)
        return module
    model = FIDInceptionV3.from_state_dict(_read_state_dict(path), source=path)
    logger.info("FID Inception-v3: pytorch-fid state dict %s", path)
    return model

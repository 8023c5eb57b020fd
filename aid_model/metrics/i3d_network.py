"""The Inception-v1 I3D network (Carreira & Zisserman 2017) in plain PyTorch, so that a
state dict in the layout of the pytorch-i3d port (``Conv3d_1a_7x7.conv3d.weight``,
``Mixed_3b.b1b.bn.running_mean``, …, ``logits.conv3d.bias``; e.g. VideoGPT's
``i3d_pretrained_400.pt``) can be loaded by name.

Every convolution and pooling pads as TensorFlow's "SAME" does (more at the end when the
padding is odd), computed from the input size, as the converted weights expect.

The batch-norm epsilon is not stored in a state dict, yet matters: VideoGPT's code (and so
its ``i3d_pretrained_400.pt``) uses 1e-5, pytorch-i3d's own (and TensorFlow's I3D) 1e-3.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# (name, input channels, branch widths: 1×1, 3×3 reduce, 3×3, 3×3 reduce, 3×3, pool proj)
MIXED = {
    "Mixed_3b": (192, (64, 96, 128, 16, 32, 32)),
    "Mixed_3c": (256, (128, 128, 192, 32, 96, 64)),
    "Mixed_4b": (480, (192, 96, 208, 16, 48, 64)),
    "Mixed_4c": (512, (160, 112, 224, 24, 64, 64)),
    "Mixed_4d": (512, (128, 128, 256, 24, 64, 64)),
    "Mixed_4e": (512, (112, 144, 288, 32, 64, 64)),
    "Mixed_4f": (528, (256, 160, 320, 32, 128, 128)),
    "Mixed_5b": (832, (256, 160, 320, 32, 128, 128)),
    "Mixed_5c": (832, (384, 192, 384, 48, 128, 128)),
}
FEATURE_CHANNELS = 1024  # Mixed_5c output


def same_padding(x: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...]) -> Tensor:
    """Pad (B, C, T, H, W) as TensorFlow's SAME: out = ceil(in / stride)."""
    pads: list[int] = []
    for size, k, s in zip(reversed(x.shape[2:]), reversed(kernel), reversed(stride), strict=True):
        total = max(k - (s if size % s == 0 else size % s), 0)
        pads += [total // 2, total - total // 2]
    return F.pad(x, pads)


class Unit3D(nn.Module):
    """Conv3d (SAME padding) → BatchNorm → ReLU; the logits unit has a bias and neither
    norm nor activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: tuple[int, int, int] = (1, 1, 1),
        stride: tuple[int, int, int] = (1, 1, 1),
        logits: bool = False,
        bn_eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.kernel, self.stride, self.logits = kernel, stride, logits
        self.conv3d = nn.Conv3d(in_channels, out_channels, kernel, stride, bias=logits)
        if not logits:
            self.bn = nn.BatchNorm3d(out_channels, eps=bn_eps)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv3d(same_padding(x, self.kernel, self.stride))
        return x if self.logits else F.relu(self.bn(x))


class MaxPoolSame(nn.Module):
    def __init__(self, kernel: tuple[int, int, int], stride: tuple[int, int, int]) -> None:
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: Tensor) -> Tensor:
        # Zero padding, as the port does: inputs after ReLU are ≥ 0, so it equals −inf here.
        return F.max_pool3d(same_padding(x, self.kernel, self.stride), self.kernel, self.stride)


class Mixed(nn.Module):
    """Four branches concatenated: 1×1; 1×1→3×3; 1×1→3×3; 3×3 max pool→1×1."""

    def __init__(self, in_channels: int, widths: tuple[int, ...], bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.b0 = Unit3D(in_channels, widths[0], bn_eps=bn_eps)
        self.b1a = Unit3D(in_channels, widths[1], bn_eps=bn_eps)
        self.b1b = Unit3D(widths[1], widths[2], (3, 3, 3), bn_eps=bn_eps)
        self.b2a = Unit3D(in_channels, widths[3], bn_eps=bn_eps)
        self.b2b = Unit3D(widths[3], widths[4], (3, 3, 3), bn_eps=bn_eps)
        self.b3a = MaxPoolSame((3, 3, 3), (1, 1, 1))
        self.b3b = Unit3D(in_channels, widths[5], bn_eps=bn_eps)

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(
            [self.b0(x), self.b1b(self.b1a(x)), self.b2b(self.b2a(x)), self.b3b(self.b3a(x))],
            dim=1,
        )


class InceptionI3d(nn.Module):
    """I3D on RGB clips (B, 3, T, 224, 224) in [−1, 1].

    ``forward`` gives the class logits averaged over the remaining time steps (B, classes),
    the features FVD uses; ``pooled_features`` the Mixed_5c activations averaged over time
    and space (B, 1024).
    """

    def __init__(self, num_classes: int = 400, bn_eps: float = 1e-5) -> None:
        super().__init__()
        self.Conv3d_1a_7x7 = Unit3D(3, 64, (7, 7, 7), (2, 2, 2), bn_eps=bn_eps)
        self.MaxPool3d_2a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Conv3d_2b_1x1 = Unit3D(64, 64, bn_eps=bn_eps)
        self.Conv3d_2c_3x3 = Unit3D(64, 192, (3, 3, 3), bn_eps=bn_eps)
        self.MaxPool3d_3a_3x3 = MaxPoolSame((1, 3, 3), (1, 2, 2))
        self.Mixed_3b = Mixed(*MIXED["Mixed_3b"], bn_eps=bn_eps)
        self.Mixed_3c = Mixed(*MIXED["Mixed_3c"], bn_eps=bn_eps)
        self.MaxPool3d_4a_3x3 = MaxPoolSame((3, 3, 3), (2, 2, 2))
        for name in ("Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f"):
            setattr(self, name, Mixed(*MIXED[name], bn_eps=bn_eps))
        self.MaxPool3d_5a_2x2 = MaxPoolSame((2, 2, 2), (2, 2, 2))
        self.Mixed_5b = Mixed(*MIXED["Mixed_5b"], bn_eps=bn_eps)
        self.Mixed_5c = Mixed(*MIXED["Mixed_5c"], bn_eps=bn_eps)
        self.logits = Unit3D(FEATURE_CHANNELS, num_classes, logits=True)

    def trunk(self, x: Tensor) -> Tensor:
        """(B, 3, T, H, W) → Mixed_5c activations (B, 1024, T/8, H/32, W/32)."""
        for module in self.children():
            if module is self.logits:
                break
            x = module(x)
        return x

    def forward(self, x: Tensor) -> Tensor:
        x = self.trunk(x)
        # Average pooling over 2 frames × 7 × 7 positions (stride 1), as the original.
        if x.shape[2] < 2 or x.shape[3] < 7 or x.shape[4] < 7:
            raise ValueError(
                f"clip too small for I3D's final pooling: Mixed_5c is {tuple(x.shape[2:])}; "
                f"give at least 9 frames of 224 × 224"
            )
        x = F.avg_pool3d(x, (2, 7, 7), stride=1)
        return self.logits(x).mean(dim=(2, 3, 4))

    def pooled_features(self, x: Tensor) -> Tensor:
        return self.trunk(x).mean(dim=(2, 3, 4))

"""The I3D (Kinetics-400) feature extractor behind FVD and KVD, from a file the user supplies.

Two kinds of file are accepted:

- TorchScript, as StyleGAN-V's ``i3d_torchscript.pt`` (a TorchScript port of the TF-Hub
  I3D that the original FVD code uses). It is called as
  ``model(videos, rescale=False, resize=False, return_features=True)`` on videos
  (B, 3, T, 224, 224) in [−1, 1] and returns the 400 logits before the softmax (B, 400).
  (StyleGAN-V itself passes uint8 videos with ``rescale=True, resize=True`` and lets the
  network scale and resize; here ``aid_model.metrics.preprocess`` does both, exactly as
  aid-method §8 states, and the network is told not to.)
- A state dict of the pytorch-i3d ``InceptionI3d`` (keys ``Conv3d_1a_7x7.conv3d.weight``,
  …, ``logits.conv3d.bias``), e.g. VideoGPT's ``i3d_pretrained_400.pt``; features are its
  time-averaged logits (B, 400), or with ``features="pool"`` the pooled Mixed_5c
  activations (B, 1024). Mind ``bn_eps`` (see ``i3d_network``).

``load_i3d`` checks the file: it exists, loads, and turns a dummy clip into (1, 400) or
(1, 1024) features. docs/evaluation.md says where such files are published.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from aid_model.metrics.model_file import (
    FeatureModelError,
    existing_file,
    is_torchscript,
    load_state_dict,
    load_torchscript,
)
from aid_model.metrics.preprocess import I3D_SIZE, i3d_preprocess

WHERE = (
    "Supply an I3D file yourself (nothing is downloaded): StyleGAN-V's i3d_torchscript.pt or "
    "VideoGPT's i3d_pretrained_400.pt; docs/evaluation.md says where they are published."
)
FEATURE_DIMS = (400, 1024)
CHECK_FRAMES = 16  # the dummy clip's length: I3D's final pooling needs at least 9 frames


@dataclass
class I3DFeatureExtractor:
    """A loaded I3D network and how to call it.

    ``kind``: "torchscript" or "state_dict"; ``feature_dim``: 400 or 1024.
    """

    model: torch.nn.Module
    kind: str
    feature_dim: int
    device: torch.device
    features: str = "logits"
    path: Path | None = None

    @torch.no_grad()
    def __call__(self, clips: Tensor) -> Tensor:
        """Preprocessed clips (B, 3, T, 224, 224) in [−1, 1] → features (B, D) float32."""
        clips = clips.to(self.device, torch.float32)
        if self.kind == "torchscript":
            out = self.model(clips, rescale=False, resize=False, return_features=True)
        elif self.features == "pool":
            out = self.model.pooled_features(clips)
        else:
            out = self.model(clips)
        return out.float()

    @torch.no_grad()
    def video_features(
        self,
        videos: Tensor,
        batch_size: int = 16,
        value_range: tuple[float, float] = (-1.0, 1.0),
    ) -> Tensor:
        """Whole clips (N, T, 3, H, W) in ``value_range`` (the dataset's and the pipeline's
        layout, reference frames included) → I3D features (N, D) float64 on the CPU.

        Preprocessing as aid-method §8: short side to 224 (bilinear), centre crop 224,
        values in [−1, 1]; done a batch at a time to bound memory.
        """
        outputs = []
        for start in range(0, videos.shape[0], batch_size):
            clips = i3d_preprocess(videos[start : start + batch_size], value_range)
            outputs.append(self(clips).double().cpu())
        if not outputs:
            return torch.empty(0, self.feature_dim, dtype=torch.float64)
        return torch.cat(outputs)


def load_i3d(
    path: str | Path,
    device: str | torch.device = "cpu",
    *,
    features: str = "logits",
    bn_eps: float = 1e-5,
    check: bool = True,
) -> I3DFeatureExtractor:
    """The I3D network in ``path`` (TorchScript or pytorch-i3d state dict), on ``device``.

    ``features``: "logits" (400-d, the FVD convention) or "pool" (1024-d; state dicts
    only). A TorchScript file, with ``check``, must turn a dummy clip (1, 3, 16, 224, 224)
    into (1, 400) or (1, 1024) features; a state dict must match ``InceptionI3d`` in every
    key and shape. Anything else raises ``FeatureModelError`` naming the file.
    ``bn_eps``: batch-norm epsilon for state dicts, which do not store it: 1e-5 for
    VideoGPT's ``i3d_pretrained_400.pt``, 1e-3 for pytorch-i3d's ``rgb_imagenet.pt``.
    """
    if features not in ("logits", "pool"):
        raise ValueError(f"features must be 'logits' or 'pool', got {features!r}")
    device = torch.device(device)
    path = existing_file(path, "I3D", WHERE)
    if is_torchscript(path):
        if features == "pool":
            raise FeatureModelError(
                f"{path} is TorchScript: it gives its own features (the logits); "
                f"features='pool' needs a pytorch-i3d state dict"
            )
        extractor = I3DFeatureExtractor(
            load_torchscript(path, device, "I3D"), "torchscript", 0, device, features, path
        )
    else:
        extractor = I3DFeatureExtractor(
            _network_from_state_dict(path, device, bn_eps), "state_dict", 0, device, features, path
        )
    if check and extractor.kind == "torchscript":
        extractor.feature_dim = _check_output(extractor, path)
    else:
        # A state dict was matched key by key and shape by shape against InceptionI3d,
        # which fixes its output; a dummy forward would only cost time (≈10 s on a CPU).
        extractor.feature_dim = 1024 if features == "pool" else 400
    return extractor


def _network_from_state_dict(path: Path, device: torch.device, bn_eps: float) -> torch.nn.Module:
    from aid_model.metrics.i3d_network import InceptionI3d

    state = load_state_dict(path, "I3D")
    logits = state.get("logits.conv3d.weight")
    if "Conv3d_1a_7x7.conv3d.weight" not in state or logits is None:
        shown = ", ".join(list(state)[:3])
        raise FeatureModelError(
            f"{str(path)!r} is not a pytorch-i3d InceptionI3d state dict (expected keys "
            f"Conv3d_1a_7x7.conv3d.weight … logits.conv3d.bias); found {len(state)} keys "
            f"starting with {shown}. {WHERE}"
        )
    network = InceptionI3d(num_classes=logits.shape[0], bn_eps=bn_eps)
    expected = network.state_dict()
    missing = [k for k in expected if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in expected]
    wrong = [
        f"{k} {tuple(state[k].shape)} (expected {tuple(v.shape)})"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong:
        raise FeatureModelError(
            f"{str(path)!r} does not match InceptionI3d: {len(missing)} missing (e.g. "
            f"{missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
            f"{len(wrong)} of another shape (e.g. {wrong[:2]})"
        )
    network.load_state_dict(state, strict=False)
    return network.to(device).eval()


def _check_output(extractor: I3DFeatureExtractor, path: Path) -> int:
    clip = torch.zeros(1, 3, CHECK_FRAMES, I3D_SIZE, I3D_SIZE)
    try:
        out = extractor(clip)
    except Exception as error:  # any failure of a foreign network means the file is unusable
        call = (
            "model(videos, rescale=False, resize=False, return_features=True)"
            if extractor.kind == "torchscript"
            else "InceptionI3d"
        )
        raise FeatureModelError(
            f"I3D file {str(path)!r} failed on a dummy clip (1, 3, {CHECK_FRAMES}, 224, 224) "
            f"called as {call}: {type(error).__name__}: {error}"
        ) from None
    if out.ndim != 2 or out.shape[0] != 1 or out.shape[1] not in FEATURE_DIMS:
        raise FeatureModelError(
            f"I3D file {str(path)!r} gave features of shape {tuple(out.shape)} for one clip; "
            f"expected (1, 400) logits or (1, 1024) pooled features. {WHERE}"
        )
    return int(out.shape[1])

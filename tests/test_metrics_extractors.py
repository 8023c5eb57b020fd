"""The I3D and Inception wrappers on tiny stand-in networks built here, and file checks."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from aid_model.metrics import FeatureModelError, InceptionI3d, load_i3d, load_inception
from aid_model.metrics.i3d_network import same_padding


class TinyI3D(nn.Module):
    """Called like StyleGAN-V's i3d_torchscript.pt. Feature 0..4 echo what it was given:
    the input's min and max, its frame count, rescale + resize, return_features."""

    def __init__(self, dim: int = 400) -> None:
        super().__init__()
        self.project = nn.Linear(3, dim)

    def forward(
        self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
        return_features: bool = False,
    ) -> torch.Tensor:  # fmt: skip
        assert x.shape[1] == 3 and x.shape[3] == 224 and x.shape[4] == 224
        out = self.project(x.mean(dim=(2, 3, 4)))
        echo = torch.stack(
            [
                x.amin(dim=(1, 2, 3, 4)),
                x.amax(dim=(1, 2, 3, 4)),
                torch.full_like(out[:, 0], float(x.shape[2])),
                torch.full_like(out[:, 0], float(rescale) + float(resize)),
                torch.full_like(out[:, 0], float(return_features)),
            ],
            dim=1,
        )
        return torch.cat([echo, out[:, 5:]], dim=1)


class NoKeywords(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(2, 3, 4))


class TinyInception(nn.Module):
    def forward(self, x: torch.Tensor, return_features: bool = False) -> torch.Tensor:
        assert x.dtype == torch.uint8
        features = x.float().mean(dim=(2, 3)).repeat(1, 683)[:, :2048]
        return features if return_features else features[:, :1008]


def save_script(module: nn.Module, path):
    """The module as a TorchScript file, the format of the published I3D and Inception."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # deprecated, yet what they ship
        torch.jit.script(module).save(str(path))
    return path


def test_torchscript_i3d_gets_preprocessed_clips_and_the_stylegan_v_call(tmp_path):
    extractor = load_i3d(save_script(TinyI3D(), tmp_path / "i3d_torchscript.pt"))
    assert extractor.kind == "torchscript" and extractor.feature_dim == 400
    videos = torch.rand(5, 12, 3, 64, 80) * 2 - 1  # (N, T, 3, H, W), reference frames included
    feats = extractor.video_features(videos, batch_size=2)
    assert feats.shape == (5, 400) and feats.dtype == torch.float64
    assert feats[:, 0].min() >= -1.0 and feats[:, 1].max() <= 1.0  # in [−1, 1]
    assert feats[:, 2].tolist() == [12.0] * 5  # every frame, the given ones too
    assert feats[:, 3].tolist() == [0.0] * 5  # rescale=False, resize=False
    assert feats[:, 4].tolist() == [1.0] * 5  # return_features=True
    zero_one = extractor.video_features((videos + 1) / 2, value_range=(0.0, 1.0))
    torch.testing.assert_close(zero_one, feats, atol=1e-5, rtol=1e-5)


def test_bad_i3d_files_are_refused_with_the_reason(tmp_path):
    with pytest.raises(FeatureModelError, match=r"does not exist.*docs/evaluation\.md"):
        load_i3d(tmp_path / "absent.pt")
    with pytest.raises(FeatureModelError, match="is a folder"):
        load_i3d(tmp_path)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a model at all")
    with pytest.raises(FeatureModelError, match="neither TorchScript nor a readable state dict"):
        load_i3d(garbage)
    wrong_dim = save_script(TinyI3D(dim=10), tmp_path / "ten.pt")
    with pytest.raises(FeatureModelError, match=r"shape \(1, 10\).*\(1, 400\)"):
        load_i3d(wrong_dim)
    no_keywords = save_script(NoKeywords(), tmp_path / "plain.pt")
    with pytest.raises(FeatureModelError, match="rescale=False, resize=False"):
        load_i3d(no_keywords)


def test_pytorch_i3d_state_dict_loads_by_name(tmp_path):
    network = InceptionI3d()
    state = {f"module.{key}": value for key, value in network.state_dict().items()}
    torch.save(state, tmp_path / "i3d_pretrained_400.pt")
    extractor = load_i3d(tmp_path / "i3d_pretrained_400.pt")
    assert extractor.kind == "state_dict" and extractor.feature_dim == 400
    torch.testing.assert_close(
        extractor.model.Mixed_5c.b1b.conv3d.weight, network.Mixed_5c.b1b.conv3d.weight
    )
    assert load_i3d(tmp_path / "i3d_pretrained_400.pt", features="pool").feature_dim == 1024
    del state["module.Mixed_4b.b0.bn.running_var"]
    state["module.logits.conv3d.bias"] = torch.zeros(7)
    torch.save(state, tmp_path / "broken.pt")
    with pytest.raises(FeatureModelError, match=r"1 missing.*running_var.*1 of another shape"):
        load_i3d(tmp_path / "broken.pt")
    torch.save({"conv.weight": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(FeatureModelError, match=r"not a pytorch-i3d InceptionI3d.*conv\.weight"):
        load_i3d(tmp_path / "other.pt")


def test_same_padding_gives_ceil_of_size_over_stride():
    x = torch.zeros(1, 1, 7, 9, 10)
    padded = same_padding(x, (3, 3, 3), (2, 2, 2))
    out = torch.nn.functional.max_pool3d(padded, 3, 2)
    assert out.shape[2:] == (4, 5, 5)


def test_inception_wrapper_feeds_uint8_and_returns_2048_features(tmp_path):
    extractor = load_inception(save_script(TinyInception(), tmp_path / "inception.pt"))
    assert extractor.feature_dim == 2048
    frames = torch.rand(7, 3, 32, 32) * 2 - 1
    feats = extractor.frame_features(frames, batch_size=3)
    assert feats.shape == (7, 2048) and feats.dtype == torch.float64
    assert feats.min() >= 0.0 and feats.max() <= 255.0
    state_dict_file = tmp_path / "weights.pt"
    torch.save({"w": torch.zeros(1)}, state_dict_file)
    with pytest.raises(FeatureModelError, match="not TorchScript"):
        load_inception(state_dict_file)

"""Trainable share of AID on the real svd_xt UNet shape, without allocating it.

    python -m aid_model.aid.param_share [--frames T] [--states S] [--ratio r]

Builds diffusers' SVD UNet (its defaults are svd/svd_xt: channels 320/640/1280/1280,
2 res blocks, attention on the first three levels, 64 channels a head, context 1024) on
the meta device, attaches AID, and prints the parameter counts by part.
"""

from __future__ import annotations

import argparse
from types import SimpleNamespace

import torch
from diffusers import UNetSpatioTemporalConditionModel

from aid_model.aid.config import AIDConfig
from aid_model.aid.model import ParameterCounts, attach_aid, count_parameters


def svd_xt_parameter_counts(config: AIDConfig) -> ParameterCounts:
    with torch.device("meta"):
        unet = UNetSpatioTemporalConditionModel()  # the defaults are SVD's shape
    return count_parameters(attach_aid(SimpleNamespace(unet=unet), config))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = AIDConfig()
    parser.add_argument("--frames", type=int, default=defaults.num_frames)
    parser.add_argument("--states", type=int, default=defaults.num_states)
    parser.add_argument("--ratio", type=float, default=defaults.adapter_ratio)
    args = parser.parse_args()
    config = AIDConfig(num_frames=args.frames, num_states=args.states, adapter_ratio=args.ratio)
    print(f"svd_xt UNet + AID, {config}")
    print(svd_xt_parameter_counts(config).table())


if __name__ == "__main__":
    main()

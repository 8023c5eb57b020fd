"""Shared pieces of the training tests (no tests here): a tiny clip dataset that follows
the data package's sample contract, the tiny training config on the test fixtures, and
the worker of the two-process DDP test (importable by spawned processes)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from conftest import CLIP_TEXT_FIXTURE, SVD_FIXTURE
from torch.utils.data import Dataset

FRAMES = 6
SIZE = 16  # 16 px → 8×8 latents with the fixture's 2-level VAE


def svd_fixture() -> Path:
    return SVD_FIXTURE / "svd_tiny_sgm.safetensors"


def text_fixture() -> Path:
    return CLIP_TEXT_FIXTURE / "openclip_text.safetensors"


class SquareClips(Dataset):
    """A square sliding right or left, as the instruction says; every item of the sample
    contract (frames (T, 3, H, W) in [−1, 1], instruction, states, K, sample_id, fps).

    Items 0 mod 3 have no states; K alternates 1, 2 (so per-sample K is exercised).
    """

    def __init__(self, count: int = 8, frames: int = FRAMES, size: int = SIZE):
        self.count, self.frames, self.size = count, frames, size
        self.epochs_seen: list[int] = []

    def __len__(self) -> int:
        return self.count

    def set_epoch(self, epoch: int) -> None:
        self.epochs_seen.append(epoch)

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.count:
            raise IndexError(index)
        clip = torch.full((self.frames, 3, self.size, self.size), -0.6)
        rightwards = index % 2 == 0
        for t in range(self.frames):
            x = 2 + (t if rightwards else self.frames - 1 - t)
            clip[t, index % 3, 5:9, x:x + 4] = 0.9
        instruction = "move the square right" if rightwards else "move the square left"
        states = [] if index % 3 == 0 else ["the square is in the middle", "it stopped"]
        return {"frames": clip, "instruction": instruction, "states": states,
                "num_reference_frames": 1 + index % 2, "sample_id": f"square/{index:03d}",
                "fps": 7.0}


def tiny_config(output_dir: Path | str, **sections: dict[str, Any]) -> dict[str, Any]:
    """The tiny CPU training config (as configs/tiny_cpu.yaml) on the test fixtures, with
    ``sections`` merged in (``optim={"max_steps": 4}`` updates that section's keys)."""
    values: dict[str, Any] = {
        "output_dir": str(output_dir),
        "seed": 3,
        "model": {"svd": str(svd_fixture()), "unet_head_channels": 16, "clip_num_heads": 2},
        "text_encoder": {"source": str(text_fixture()), "num_heads": 4},
        "aid": {"num_frames": FRAMES, "num_reference_frames": 1, "num_states": 2,
                "dqformer_heads": 2, "queries_per_frame": 8},
        "data": {"name": "in-test"},
        "loader": {"batch_size": 2},
        "optim": {"lr": 1e-3, "warmup_steps": 2, "max_steps": 4},
        "ema": {"decay": 0.99},
        "checkpoint": {"every": 0, "keep_last": 2},
        "logging": {"every": 100, "progress_bar": False},
        # One thread: on 2 cores shared with other processes, two OpenMP threads spend
        # most of their time waiting for each other (5× slower measured).
        "runtime": {"threads": 1},
    }
    for name, update in sections.items():
        if isinstance(update, dict) and isinstance(values.get(name), dict):
            values[name] = {**values[name], **update}
        else:
            values[name] = update
    return values


def ddp_worker(rank: int, world_size: int, port: int, values: dict[str, Any],
               out_dir: str) -> None:
    """One process of the gloo DDP test: trains, then saves its trained parameters and
    losses to ``out_dir/rank{rank}.pt``."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                      WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    from aid_model.aid import trainable_parameters
    from aid_model.train import build_config, train

    result = train(build_config(values), dataset=SquareClips())
    model = result.trainer.model
    torch.save({"parameters": {n: p.detach().clone()
                               for n, p in trainable_parameters(model).items()},
                "losses": result.losses},
               Path(out_dir) / f"rank{rank}.pt")

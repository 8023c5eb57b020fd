"""build_dataset, and the dataset in a DataLoader: determinism, samplers, workers' skips."""

from __future__ import annotations

import pytest
import torch
from test_data_decode import write_corrupt, write_video
from torch.utils.data import DataLoader, DistributedSampler

from aid_model.data import (
    DATASET_NAMES,
    ClipDataset,
    build_dataset,
    collate_clips,
    make_sample,
    read_generic,
)


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("build")
    lines = ["path,instruction"]
    for index in range(6):
        if index == 2:
            write_corrupt(root / f"v{index}.mp4")
        else:
            write_video(root / f"v{index}.mp4", 20)
        lines.append(f"v{index}.mp4,instruction {index}")
    (root / "annotations.csv").write_text("\n".join(lines) + "\n")
    return root


def test_build_dataset_by_name_with_options(root):
    dataset = build_dataset(
        {"name": "generic", "root": str(root), "num_frames": 4, "stride": 2, "size": [16, 24],
         "num_reference_frames": 2, "max_samples": 3, "seed": 5}
    )  # fmt: skip
    assert isinstance(dataset, ClipDataset) and dataset.name == "generic" and len(dataset) == 3
    assert dataset[0]["frames"].shape == (4, 3, 16, 24)
    assert set(DATASET_NAMES) == {"ssv2", "bridge", "epic100", "ucf101", "generic"}


def test_build_dataset_rejects_unknown_names_and_options(root):
    with pytest.raises(ValueError, match="one of ssv2, bridge, epic100, ucf101, generic"):
        build_dataset({"name": "kinetics", "root": str(root)})
    with pytest.raises(ValueError, match=r"does not take option.*num_frame\b.*num_frames"):
        build_dataset({"name": "generic", "root": str(root), "num_frame": 4})
    with pytest.raises(ValueError, match="needs 'root'"):
        build_dataset({"name": "ssv2"})
    with pytest.raises(ValueError, match=r"num_reference_frames .* = \[1, 3\], got 4"):
        build_dataset({"name": "generic", "root": str(root), "num_frames": 4,
                       "num_reference_frames": 4})  # fmt: skip


def test_items_depend_on_seed_epoch_and_index_only(root):
    def dataset(seed):
        return ClipDataset(read_generic(root), num_frames=4, stride=2, size=16, seed=seed)

    a, b = dataset(1), dataset(1)
    assert torch.equal(a[3]["frames"], b[3]["frames"])
    windows = {tuple(a[i]["frames"][:, 0, 0, 0].tolist()) for i in (0, 1, 3, 4, 5)}
    epochs = []
    for epoch in range(6):
        a.set_epoch(epoch)
        epochs.append(a[0]["frames"][0, 0, 0, 0].item())
    assert len(set(epochs)) > 1  # the window moves from epoch to epoch
    assert len(windows) > 1


def test_distributed_ranks_share_out_the_indices_and_agree_on_items(root):
    dataset = ClipDataset(read_generic(root), num_frames=4, stride=2, size=16, random_offset=False)
    seen = []
    for rank in range(2):
        sampler = DistributedSampler(dataset, num_replicas=2, rank=rank, shuffle=True, seed=3)
        sampler.set_epoch(0)
        loader = DataLoader(dataset, batch_size=3, sampler=sampler, collate_fn=collate_clips)
        (batch,) = list(loader)
        assert batch["frames"].shape == (3, 4, 3, 16, 16)
        seen.extend(batch["sample_id"])
    # Six indices over two ranks; the corrupt v2 was replaced by v3, so v3 appears twice.
    assert sorted(seen) == ["v0", "v1", "v3", "v3", "v4", "v5"]


def test_skips_in_worker_processes_reach_the_main_dataset(root):
    dataset = ClipDataset(read_generic(root), num_frames=4, stride=2, size=16, random_offset=False)
    loader = DataLoader(dataset, batch_size=6, num_workers=1, collate_fn=collate_clips)
    for batch in loader:
        assert batch["skipped"] and batch["skipped"][0].startswith("v2: unreadable")
        dataset.count_skips(batch)
    assert dataset.skipped.count == 1 and "v2" in dataset.skip_summary()


def test_sample_contract_is_checked_and_mixed_shapes_do_not_batch():
    frames = torch.zeros(4, 3, 8, 8)
    item = make_sample(frames, " go ", ("a",), 1, "x", 7)
    assert item["states"] == ["a"] and isinstance(item["fps"], float)
    with pytest.raises(ValueError, match=r"num_reference_frames must be in \[1, T − 1\]"):
        make_sample(frames, "go", [], 4, "x", 7.0)
    with pytest.raises(ValueError, match=r"\(T, 3, H, W\)"):
        make_sample(torch.zeros(4, 8, 8), "go", [], 1, "x", 7.0)
    other = make_sample(torch.zeros(4, 3, 16, 16), "go", [], 1, "y", 7.0)
    with pytest.raises(ValueError, match="different shapes"):
        collate_clips([item, other])

"""Outputs are written under a temporary name and renamed: an interrupted write leaves the
old file whole and no temporary behind; weight files get the permissions of a new file."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from aid_model.atomic import atomic_path, atomic_write_file
from aid_model.video_io import read_video, write_contact_sheet, write_frames, write_mp4


class Killed(Exception):
    """Stands in for a kill mid-write (Ctrl-C, an out-of-memory, a full disk)."""


def frames(count: int, value: float) -> torch.Tensor:
    return torch.full((count, 16, 16, 3), value)


def only(folder: Path) -> list[str]:
    return sorted(path.name for path in folder.iterdir())


def test_an_interrupted_write_leaves_the_old_file_and_no_temporary(tmp_path) -> None:
    target = tmp_path / "notes.txt"
    target.write_text("the good file")
    with pytest.raises(Killed), atomic_path(target) as temporary:
        temporary.write_text("half of the ne")
        raise Killed
    assert target.read_text() == "the good file" and only(tmp_path) == ["notes.txt"]
    atomic_write_file(target, lambda path: path.write_text("the new file"))
    assert target.read_text() == "the new file" and only(tmp_path) == ["notes.txt"]


def test_a_video_interrupted_mid_encode_keeps_the_previous_video(tmp_path, monkeypatch) -> None:
    import av

    video = write_mp4(frames(6, 0.25), tmp_path / "pour.mp4")
    good = read_video(video)
    real = av.VideoFrame.from_ndarray
    encoded = []

    def killed_after_two_frames(*args, **kwargs):
        if len(encoded) == 2:
            raise Killed
        encoded.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(av.VideoFrame, "from_ndarray", killed_after_two_frames)
    with pytest.raises(Killed):
        write_mp4(frames(6, 0.75), video)
    assert torch.equal(read_video(video), good) and only(tmp_path) == ["pour.mp4"]


def test_sheets_and_frames_land_under_their_names(tmp_path) -> None:
    sheet = write_contact_sheet([frames(3, 0.5)], tmp_path / "sheet.png")
    written = write_frames(frames(2, 0.5), tmp_path / "frames")
    assert only(tmp_path) == ["frames", "sheet.png"] and sheet.stat().st_size > 0
    assert [path.name for path in written] == only(tmp_path / "frames")


@pytest.mark.parametrize(("umask", "mode"), [(0o022, 0o644), (0o027, 0o640)])
def test_weight_files_get_a_new_files_permissions_not_0600(tmp_path, umask, mode) -> None:
    previous = os.umask(umask)
    try:
        path = atomic_write_file(tmp_path / "aid.safetensors",
                                 lambda target: save_file({"w": torch.ones(2)}, str(target)))
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == mode  # safetensors alone writes 0600
    assert torch.equal(load_file(str(path))["w"], torch.ones(2))


def test_saved_aid_weights_are_readable_by_others(tmp_path) -> None:
    from test_aid_weights import CONFIG, tiny_unet

    from aid_model.aid import attach_aid, save_aid_weights

    previous = os.umask(0o022)
    try:
        path = save_aid_weights(attach_aid(tiny_unet(), CONFIG), tmp_path / "aid.safetensors")
    finally:
        os.umask(previous)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644 and only(tmp_path) == ["aid.safetensors"]

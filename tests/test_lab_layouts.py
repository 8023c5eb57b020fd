"""``python -m lab.miniature.layouts`` runs and prints its table (tiny batch, one step)."""

from __future__ import annotations

import pytest

from lab.miniature import layouts


def test_layouts_command_prints_a_row_per_layout(capsys):
    layouts.main(["--layouts", "a,b", "--batch", "1", "--vae-clips", "1", "--threads", "1",
                  "--warmup", "0", "--repeats", "1"])
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| (")]
    assert [row.split(")")[0] for row in rows] == ["| (a", "| (b"]
    today, finer = (row.split(" | ") for row in rows)
    assert today[1].startswith("8×8×8") and finer[1].startswith("16×16×8")
    assert finer[2] == "2.5, 4"  # a 10 px object spans 2.5 cells, a 16 px one 4
    assert "not loadable" in finer[0] and "not loadable" not in today[0]


def test_sixteen_channel_levels_need_narrowed_group_norms():
    # diffusers' SVD UNet hardcodes 32 GroupNorm groups: a 16-channel level fails to build.
    from diffusers import UNetSpatioTemporalConditionModel

    with pytest.raises(ValueError, match="divisible by num_groups"):
        UNetSpatioTemporalConditionModel(**layouts.LAYOUTS["b"].unet)
    assert layouts.loadable(layouts.LAYOUTS["c"]) and not layouts.loadable(layouts.LAYOUTS["b"])


def test_unknown_layout_is_refused():
    with pytest.raises(SystemExit, match="unknown layouts"):
        layouts.main(["--layouts", "z"])

"""Look-alike scenes (the named object shares its colour with another object) and training
sets with a chosen share of them."""

from __future__ import annotations

import json

import pytest
from test_synthetic_dataset import main

from aid_model.synthetic import generate_clip
from aid_model.synthetic.lookalike import has_lookalike, mix_lookalikes


def _clips(start: int = 0, stop: int = 400):
    return (generate_clip(seed) for seed in range(start, stop))


def test_a_lookalike_is_another_object_of_the_named_colour():
    seen = {True: 0, False: 0}
    for clip in _clips(0, 200):
        named = clip.objects[clip.target]
        others = [obj for i, obj in enumerate(clip.objects) if i != clip.target]
        expected = any(obj.colour == named.colour for obj in others)
        assert has_lookalike(clip) == expected
        # An object of the named colour is never of the named shape (the world's rule).
        assert all(obj.shape != named.shape for obj in others if obj.colour == named.colour)
        seen[expected] += 1
    assert seen[True] >= 10 and seen[False] >= 100  # both kinds occur, look-alikes rarer
    assert not has_lookalike(generate_clip(0, random_motion=True))


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_mixing_fills_both_quotas_in_seed_order(share):
    mixed = list(mix_lookalikes(_clips(), 20, share))
    assert len(mixed) == 20
    assert sum(has_lookalike(clip) for clip in mixed) == round(share * 20)
    seeds = [clip.seed for clip in mixed]
    assert seeds == sorted(seeds)
    # Each kind is the first of its kind among the seeds walked.
    for kind in (True, False):
        taken = [clip.seed for clip in mixed if has_lookalike(clip) == kind]
        first = [clip.seed for clip in _clips(0, seeds[-1] + 1) if has_lookalike(clip) == kind]
        assert taken == first[: len(taken)]


def test_mixing_refuses_a_bad_share_and_says_when_the_clips_run_out():
    with pytest.raises(ValueError, match=r"within 0 and 1, got 1\.5"):
        list(mix_lookalikes(_clips(), 4, 1.5))
    with pytest.raises(ValueError, match="ran out"):
        list(mix_lookalikes(_clips(0, 10), 10, 1.0))


def test_cli_writes_the_share_asked_for(tmp_path, capsys):
    argv = ["synthetic", "--out", str(tmp_path / "mixed"), "--num-clips", "6",
            "--preview-clips", "0"]
    assert main([*argv, "--lookalike-share", "0.5"]) == 0
    assert "6 instructed clip(s), 50 % of them look-alike, seeds 0.." in capsys.readouterr().out
    seeds = [json.loads(line)["seed"]
             for line in (tmp_path / "mixed" / "world.jsonl").read_text().splitlines()]
    assert sum(has_lookalike(generate_clip(seed)) for seed in seeds) == 3
    assert main([*argv, "--lookalike-share", "2"]) == 2
    assert "--lookalike-share must be within 0 and 1, got 2.0" in capsys.readouterr().err
    assert main([*argv, "--lookalike-share", "0.5", "--random-motion"]) == 2
    assert "leave out --random-motion" in capsys.readouterr().err

"""Command-line user errors: every option and output path checked before a model loads,
each failure one line naming the option (no traceback unless --debug)."""

from __future__ import annotations

import os
import struct

import pytest
from cli_runner import run_aid_cli
from safetensors.torch import save_file

import aid_model.pipeline
from aid_model.cli import main
from aid_model.evaluate import EvaluationSettings
from aid_model.pipeline import PredictionOptions


@pytest.fixture
def setup(tmp_path, monkeypatch, svd_fixture_checkpoint):
    """Valid inputs, and a load_pipeline that fails the test if any check lets it run."""
    from PIL import Image

    def loaded(*args, **kwargs):
        raise AssertionError("a model was loaded before the options were checked")

    monkeypatch.setattr(aid_model.pipeline, "load_pipeline", loaded)
    image = tmp_path / "first.png"
    Image.new("RGB", (16, 16), (90, 120, 30)).save(image)
    (tmp_path / "a_file").write_text("x")
    return tmp_path, ["--svd", str(svd_fixture_checkpoint), "--image", str(image)]


def fails(argv, capsys, *expected: str) -> str:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for text in expected:
        assert text in err, (text, err)
    return err


@pytest.mark.parametrize("extra, expected", [
    (["--out", "{tmp}"], "--out {tmp} is a folder"),
    (["--out", "{tmp}/a_file/o.mp4"], "a_file is a file"),
    (["--out", "{tmp}/o.mp4", "--gif", "{tmp}/x.png"], "--gif must end in .gif"),
    (["--out", "{tmp}/o.mp4", "--webp", "{tmp}/x.gif"], "--webp must end in .webp"),
    (["--out", "{tmp}/o.mp4", "--contact-sheet", "{tmp}/sheet"],
     "--contact-sheet must end in .png"),
    (["--out", "{tmp}/o.mp4", "--frames-dir", "{tmp}/a_file"],
     "--frames-dir {tmp}/a_file is a file"),
    (["--out", "{tmp}/o.mp4", "--seed", str(2**70)], "--seed must be a whole number"),
    (["--out", "{tmp}/o.mp4", "--seed", "-1"], "--seed must be"),
    (["--out", "{tmp}/o.mp4", "--cond-aug", "nan"], "--cond-aug must be a finite number"),
    (["--out", "{tmp}/o.mp4", "--fps", "inf"], "--fps must be a finite number"),
    (["--out", "{tmp}/o.mp4", "--frame-scale", "nan"], "--frame-scale must be a finite"),
    (["--out", "{tmp}/o.mp4", "--motion-bucket", "-3"], "--motion-bucket must be"),
    (["--out", "{tmp}/o.mp4", "--frames", "1"], "--frames must be a whole number >= 2"),
    (["--out", "{tmp}/o.mp4", "--steps", "0"], "--steps must be"),
    (["--out", "{tmp}/o.mp4", "--height", "0"], "--height must be a positive"),
    (["--out", "{tmp}/o.mp4", "--frames", "2", "--image", "{tmp}/first.png"], "need 1 <= K < T"),
    (["--out", "{tmp}/o.mp4", "--guidance-interval", "5", "1"],
     "--guidance-interval=(5.0, 1.0) is not"),
    (["--out", "{tmp}/o.mp4", "--dtype", "float8"], "--dtype: unknown dtype"),
    (["--out", "{tmp}/o.mp4", "--device", "toaster"], "--device 'toaster' is not a device"),
    (["--out", "{tmp}/o.mp4", "--unet-head-channels", "0"], "--unet-head-channels must be"),
    (["--out", "{tmp}/o.mp4", "--aid", "{tmp}/none.safetensors"],
     "--aid {tmp}/none.safetensors does"),
    (["--out", "{tmp}/o.mp4", "--states-file", "{tmp}"], "--states-file {tmp} is a folder"),
])
def test_predict_checks_every_option_before_loading(setup, capsys, extra, expected):
    tmp, base = setup
    argv = ["predict", *base, *[part.format(tmp=tmp) for part in extra]]
    fails(argv, capsys, expected.format(tmp=tmp))


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_an_unwritable_output_place_is_refused(setup, capsys):
    tmp, base = setup
    locked = tmp / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        fails(["predict", *base, "--out", str(locked / "o.mp4")], capsys, "permission denied")
    finally:
        locked.chmod(0o700)


def test_a_binary_states_file_is_named(setup, capsys):
    tmp, base = setup
    states = tmp / "states.txt"
    states.write_bytes(b"\xff\xfe\x00binary\x89PNG")
    fails(["predict", *base, "--out", str(tmp / "o.mp4"), "--states-file", str(states)],
          capsys, f"--states-file {states} is not UTF-8 text")


def test_manipulate_and_long_check_their_outputs(setup, capsys):
    tmp, base = setup
    fails(["manipulate", *base, "--instruction", "a", "--out-dir", str(tmp / "a_file")],
          capsys, f"--out-dir {tmp / 'a_file'} is a file")
    fails(["long", *base, "--instruction", "a", "--out", str(tmp / "o.mp4"), "--overlap", "0"],
          capsys, "--overlap must be a positive")
    fails(["long", *base, "--instruction", "a", "--out", str(tmp / "o.mp4"), "--frames", "4",
           "--overlap", "4"], capsys, "--overlap 4 must be smaller")


def test_a_damaged_aid_file_is_named_before_the_svd_loads(setup, capsys, clip_text_fixture_dir):
    tmp, base = setup
    aid = tmp / "aid.safetensors"
    save_file({"x": __import__("torch").zeros(1)}, str(aid))  # no AID metadata
    fails(["predict", *base, "--out", str(tmp / "o.mp4"), "--aid", str(aid), "--text-encoder",
           str(clip_text_fixture_dir / "openclip_text.safetensors")],
          capsys, f"{aid} is not an AID weight file")


def test_debug_keeps_the_traceback(setup):
    tmp, base = setup
    with pytest.raises(ValueError, match="--seed"):
        main(["predict", *base, "--out", str(tmp / "o.mp4"), "--seed", "-1", "--debug"])
    with pytest.raises(ValueError, match="--seed"):
        main(["--debug", "predict", *base, "--out", str(tmp / "o.mp4"), "--seed", "-1"])


def test_info_on_a_missing_or_damaged_file_prints_one_line(tmp_path):
    bad = tmp_path / "model.safetensors"
    header = b'{"a": 5}'
    bad.write_bytes(struct.pack("<Q", len(header)) + header)
    result = run_aid_cli("info", str(bad), timeout=120)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
    assert str(bad) in result.stderr and "malformed safetensors header" in result.stderr


def test_evaluate_settings_name_the_option():
    def settings(**changes):
        values = dict(num_samples=4, i3d=__file__, out_dir="/tmp/unused-eval", aid=__file__,
                      options=PredictionOptions())
        return EvaluationSettings(**{**values, **changes})

    with pytest.raises(ValueError, match="--seed"):
        settings(seed=2**64 - 2).validate()  # the last sample's seed overflows
    with pytest.raises(ValueError, match="--fps must be a finite"):
        settings(fps=float("nan")).validate()
    with pytest.raises(ValueError, match=r"--i3d .* does not exist"):
        settings(i3d="/nonexistent/i3d.pt").validate()
    settings().validate()

"""``python -m aid_model predict | long | manipulate`` end to end on tiny files made here."""

from __future__ import annotations

import json

import pytest
import torch
from cli_runner import run_aid_cli
from PIL import Image
from tiny_models import tiny_aid_pipeline

from aid_model.aid import save_aid_weights
from aid_model.cli import main
from aid_model.demo.load import DEMO_OPTIONS
from aid_model.pipeline import PredictionOptions
from aid_model.video_io import read_video


@pytest.fixture(scope="module")
def files(tmp_path_factory, svd_fixture_checkpoint, clip_text_fixture_dir):
    folder = tmp_path_factory.mktemp("cli")
    pipeline = tiny_aid_pipeline(svd_fixture_checkpoint, clip_text_fixture_dir)
    aid_path = save_aid_weights(pipeline.aid, folder / "aid_tiny.safetensors")
    generator = torch.Generator().manual_seed(0)
    image = Image.fromarray((torch.rand(20, 24, 3, generator=generator) * 255).byte().numpy())
    image.save(folder / "first.png")
    heads = json.loads((clip_text_fixture_dir / "openclip_model_config.json").read_text())
    model_args = [
        "--svd",
        str(svd_fixture_checkpoint),
        "--aid",
        str(aid_path),
        "--text-encoder",
        str(clip_text_fixture_dir / "openclip_text.safetensors"),
        "--tokenizer",
        str(clip_text_fixture_dir),
        "--unet-head-channels",
        "16",
        "--clip-num-heads",
        "2",
        "--text-num-heads",
        str(heads["text_cfg"]["heads"]),
        "--height",
        "16",
        "--width",
        "16",
        "--steps",
        "2",
        "--decode-chunk",
        "3",
    ]
    return folder, model_args


def test_predict_writes_a_playable_mp4_and_extras(files):
    folder, model_args = files
    out = folder / "out.mp4"
    states = folder / "states.txt"
    states.write_text("the cup is in the middle\nthe cup is on the left\n")
    result = run_aid_cli(
        "predict",
        *model_args,
        "--image",
        str(folder / "first.png"),
        "--instruction",
        "move the cup left",
        "--states-file",
        str(states),
        "--out",
        str(out),
        "--gif",
        str(folder / "out.gif"),
        "--contact-sheet",
        str(folder / "sheet.png"),
        "--frames-dir",
        str(folder / "frames"),
    )
    assert result.returncode == 0, result.stderr
    assert f"wrote {out}" in result.stdout
    video = read_video(out)
    assert video.shape == (6, 16, 16, 3)  # T = the tiny AID model's 6 frames
    assert Image.open(folder / "out.gif").n_frames == 6
    assert Image.open(folder / "sheet.png").size[0] > 16 * 6
    assert len(list((folder / "frames").glob("frame_*.png"))) == 6


def test_long_and_manipulate(files, capsys):
    folder, model_args = files
    code = main(
        [
            "long",
            *model_args,
            "--image",
            str(folder / "first.png"),
            "--instruction",
            "move the cup left",
            "--instruction",
            "move the cup up",
            "--overlap",
            "2",
            "--out",
            str(folder / "long.mp4"),
        ]
    )
    assert code == 0
    assert read_video(folder / "long.mp4").shape[0] == 6 + 4
    code = main(
        [
            "manipulate",
            *model_args,
            "--image",
            str(folder / "first.png"),
            "--instruction",
            "move the cup left",
            "--instruction",
            "move the cup right",
            "--out-dir",
            str(folder / "manipulated"),
        ]
    )
    assert code == 0
    written = sorted(p.name for p in (folder / "manipulated").iterdir())
    assert written == ["00_move_the_cup_left.mp4", "01_move_the_cup_right.mp4", "contact_sheet.png"]
    assert "wrote" in capsys.readouterr().out


def test_help_explains_every_option_with_its_default(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    text = capsys.readouterr().out
    for option in (
        "--frame-scale",
        "--text-scale",
        "--guidance-interval",
        "--decode-chunk",
        "--motion-bucket",
        "--cond-aug",
        "--sampler",
    ):
        assert option in text
    # The defaults shown are the ones used: PredictionOptions' fields, DEMO_OPTIONS with --demo.
    flat = " ".join(text.split())
    general, demo = PredictionOptions(), DEMO_OPTIONS
    for field in ("steps", "frame_scale", "text_scale", "fps"):
        shown = f"(default: {getattr(general, field)}; with --demo: {getattr(demo, field)})"
        assert shown in flat, field
    assert f"(default: {general.sampler})" in flat


def test_bad_paths_fail_before_loading_models(files, tmp_path, capsys):
    folder, model_args = files
    missing = ["predict", *model_args, "--image", str(tmp_path / "nothing.png"),
               "--instruction", "x", "--out", str(tmp_path / "o.mp4")]
    assert main(missing) == 1
    assert "nothing.png" in capsys.readouterr().err
    with pytest.raises(FileNotFoundError, match=r"nothing\.png"):
        main([*missing, "--debug"])  # --debug: the exception itself, with its traceback
    assert main(["predict", *model_args, "--image", str(folder / "first.png"),
                 "--out", str(tmp_path / "o.avi")]) == 1
    assert "--out must end in .mp4" in capsys.readouterr().err

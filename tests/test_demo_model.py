"""The bundled miniature AID: it loads with no downloads, follows instructions on fixed
held-out scenes (issue 7: at least 4 of 5), predicts from the command line, and
`make demo`'s outputs are valid videos."""

from __future__ import annotations

import torch
from cli_runner import run_aid_cli

from aid_model.demo.load import DEMO_OPTIONS, demo_files, load_demo_pipeline
from aid_model.demo.paths import DEMO_DIR
from aid_model.synthetic import generate_clip
from aid_model.synthetic.dataset import clip_seeds
from aid_model.video_io import read_video
from lab.benchmark.benchmark import evaluate_pipeline

# Five fixed held-out scenes (training uses the "train" seed range only).
HELD_OUT_OFFSET = 500
HELD_OUT = clip_seeds("heldout", HELD_OUT_OFFSET, 5)


def test_the_bundled_model_is_small_complete_and_loads_through_the_real_loaders():
    files = demo_files()
    size = sum(p.stat().st_size for p in DEMO_DIR.rglob("*") if p.is_file())
    assert size <= 20 * 1024 * 1024, f"demo_model/ is {size / 2**20:.1f} MiB (limit 20)"
    assert (files["svd"] / "unet" / "config.json").exists()
    demo = load_demo_pipeline()
    assert demo.aid.config.num_frames == 8
    clip = generate_clip(HELD_OUT[0])
    first = torch.from_numpy(clip.frames[0]).permute(2, 0, 1).float() / 255.0
    video = demo.predict([first], clip.instruction, options=DEMO_OPTIONS.with_(steps=2))
    assert video.shape == (8, 64, 64, 3)
    assert float(video.min()) >= 0.0 and float(video.max()) <= 1.0


def test_the_bundled_model_follows_instructions_on_held_out_scenes():
    """Issue 7: on five fixed held-out scenes (``HELD_OUT``), the named object moves the
    instructed way, every other object still, in at least 4; scored by the benchmark's own
    path (stand-in states, noise seeds 500–504)."""
    scores, _ = evaluate_pipeline(load_demo_pipeline(), "held-out", num_scenes=len(HELD_OUT),
                                  seed=HELD_OUT_OFFSET)
    # Measured with the bundled model: 5 of 5.
    assert scores.passed_scenes.count("1") >= 4, scores.row()


def test_make_demo_writes_valid_videos(tmp_path):
    result = run_aid_cli("demo", "--out", str(tmp_path), timeout=600)
    assert result.returncode == 0, result.stderr
    videos = sorted(tmp_path.glob("*.mp4"))
    assert len(videos) == 5  # four manipulations and the long video
    for video in videos:
        frames = read_video(video)
        expected = 8 + 2 * 6 if video.name == "long_video.mp4" else 8
        assert frames.shape == (expected, 64, 64, 3), video.name
    assert (tmp_path / "manipulation.png").exists() and (tmp_path / "long_video.png").exists()
    assert "wrote" in result.stdout


def test_predict_demo_from_the_command_line(tmp_path):
    clip = generate_clip(HELD_OUT[0])
    from PIL import Image

    Image.fromarray(clip.frames[0]).save(tmp_path / "scene.png")
    result = run_aid_cli("predict", "--demo", "--image", str(tmp_path / "scene.png"),
                         "--instruction", clip.instruction, "--out", str(tmp_path / "out.mp4"),
                         "--frames-dir", str(tmp_path / "frames"))
    assert result.returncode == 0, result.stderr
    assert read_video(tmp_path / "out.mp4").shape == (8, 64, 64, 3)
    assert len(list((tmp_path / "frames").glob("*.png"))) == 8

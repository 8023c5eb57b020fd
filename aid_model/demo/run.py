"""``python -m aid_model demo``: the miniature at work on a generated scene.

Predicts, from one first frame, a video per instruction (manipulation: several directions
for the same object) and a three-segment long video, and writes mp4s and contact sheets.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from aid_model.demo.load import DEMO_OPTIONS, load_demo_pipeline
from aid_model.synthetic import generate_clip
from aid_model.synthetic.accuracy import direction_accuracy
from aid_model.synthetic.prompter import SyntheticStatePrompter
from aid_model.video_io import write_contact_sheet, write_mp4

DEFAULT_SCENE_SEED = 1_000_000_007  # a held-out scene (training seeds are below 10⁹)


def scene_instructions(clip) -> tuple[list[str], list[str]]:
    """Manipulation instructions (the named object in four directions) and a three-step
    long-video plan, for the scene of ``clip``."""
    target = clip.objects[clip.target]
    name = target.name
    manipulation = [f"move the {name} {d}" for d in ("left", "right", "up", "down")]
    others = [o for i, o in enumerate(clip.objects) if i != clip.target]
    second = others[0].name if others else name
    long_video = [f"move the {name} right", f"move the {name} down", f"move the {second} left"]
    return manipulation, long_video


def run_demo(out_dir: str | Path, scene_seed: int = DEFAULT_SCENE_SEED, device: str = "cpu",
             seed: int = 0) -> list[Path]:
    """Writes the demo outputs into ``out_dir`` and returns their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    pipeline = load_demo_pipeline(device=device)
    clip = generate_clip(scene_seed)
    first = torch.from_numpy(clip.frames[0]).permute(2, 0, 1).float() / 255.0
    manipulation, long_plan = scene_instructions(clip)
    options = DEMO_OPTIONS.with_(seed=seed)
    # The world's stand-in VLM writes the future states, as LLaVA does for a real model.
    prompter = SyntheticStatePrompter()
    num_states = pipeline.aid.config.num_states
    states = prompter.predict_states([clip.frames[0]] * len(manipulation), manipulation,
                                     num_states)
    written: list[Path] = []
    videos = pipeline.manipulate(first, manipulation, states, options=options)
    labels = []
    for instruction, video in zip(manipulation, videos, strict=True):
        name = instruction.replace(" ", "_")
        written.append(write_mp4(video, out_dir / f"{name}.mp4", fps=options.fps))
        ok = direction_accuracy(video[0].numpy(), video[-1].numpy(), instruction)
        verdict = "moved as told" if ok else "moved NOT as told"
        labels.append(f"{instruction}: {verdict}")
        print(f"{instruction!r}: {verdict}")
    written.append(write_contact_sheet(videos, out_dir / "manipulation.png", labels=labels))
    from aid_model.pipeline import predict_long_video

    long_video = predict_long_video(pipeline, [first], long_plan, overlap=2, options=options,
                                    state_predictor=prompter)
    written.append(write_mp4(long_video, out_dir / "long_video.mp4", fps=options.fps))
    frames = options.num_frames or pipeline.aid.config.num_frames
    rows = [long_video[i : i + frames] for i in range(0, long_video.shape[0], frames)]
    written.append(write_contact_sheet(rows, out_dir / "long_video.png"))
    print(f"demo finished in {time.perf_counter() - start:.1f} s")
    return written

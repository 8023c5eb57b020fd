"""The extension inside a real ComfyUI server (only when ``COMFYUI_PATH`` names an unpacked
ComfyUI; ``make test-comfyui``).

Starts ``main.py --cpu`` on 127.0.0.1 with a temporary base directory whose
``custom_nodes/comfyui-aid`` links to this repository, so ComfyUI's own custom-node loader
imports it. Its ``models/`` holds stand-ins under the names the real-model workflows use
(prompt validation only checks that the names are listed; the SVD fixture is too small for
ComfyUI's checkpoint detection, so those workflows cannot run here). Checks: the extension
loads without an import error; /object_info against our classes and the recorded core nodes;
every shipped API workflow passes ComfyUI's prompt validation at /prompt; the demo workflow,
as shipped, runs through ComfyUI's executor and writes its video; an interrupt during
sampling leaves the server able to run the next prompt; the batch client. ``COMFYUI_PYTHON``
picks the interpreter that has ComfyUI's requirements (default: this one). Without
``COMFYUI_PATH`` the module is skipped as a whole, with one line that says how to run it.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from io import BytesIO
from urllib.parse import urlencode

import pytest
from test_nodes_support import REPO_ROOT, load_package

COMFYUI = os.environ.get("COMFYUI_PATH")
if not COMFYUI:
    pytest.skip("real-ComfyUI tests: to run them, `make test-comfyui` (or set COMFYUI_PATH to "
                "an unpacked ComfyUI, the folder with main.py)", allow_module_level=True)
START_TIMEOUT = 240.0
RUN_TIMEOUT = 600.0
API = REPO_ROOT / "workflows" / "api"
DEMO = json.loads((API / "aid_demo.json").read_text())
DEMO_SAVE, DEMO_SAMPLER, DEMO_NOISE, DEMO_SIGMAS = "11", "9", "8", "7"
DEMO_SCENE_SEED = 1_000_000_007


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def post_json(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def stand_ins(models, svd_checkpoint, clip_text_dir) -> None:
    """The real-model workflows' files, by name (their contents are never read here)."""
    for folder, name, target in (
            ("checkpoints", "svd_xt.safetensors", svd_checkpoint),
            ("aid", "aid_final.safetensors", svd_checkpoint),
            ("text_encoders", "open_clip_model.safetensors",
             clip_text_dir / "openclip_text.safetensors")):
        (models / folder).mkdir(parents=True, exist_ok=True)
        (models / folder / name).symlink_to(target)
    vlm = models / "LLM" / "llava-onevision-qwen2-7b-ov-hf"
    vlm.mkdir(parents=True)
    (vlm / "config.json").write_text("{}")


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, svd_fixture_checkpoint, clip_text_fixture_dir):
    base = tmp_path_factory.mktemp("comfyui-base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "comfyui-aid").symlink_to(REPO_ROOT, target_is_directory=True)
    stand_ins(base / "models", svd_fixture_checkpoint, clip_text_fixture_dir)
    port = free_port()
    log_path = base / "comfyui.log"
    command = [os.environ.get("COMFYUI_PYTHON", sys.executable), "main.py", "--cpu",
               "--listen", "127.0.0.1", "--port", str(port), "--base-directory", str(base),
               "--disable-auto-launch"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    with log_path.open("w") as log:
        process = subprocess.Popen(command, cwd=COMFYUI, stdout=log, stderr=subprocess.STDOUT,
                                   env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if process.poll() is not None:
                pytest.fail(f"ComfyUI exited ({process.returncode}):\n"
                            + log_path.read_text()[-4000:])
            try:
                get_json(url + "/object_info/AIDApply")
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail("ComfyUI did not start in time:\n" + log_path.read_text()[-4000:])
                time.sleep(1.0)
        yield url, base, log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()


def queue(url: str, prompt: dict, client_id: str | None = None) -> str:
    body = {"prompt": prompt, **({"client_id": client_id} if client_id else {})}
    answer = post_json(url + "/prompt", body)
    assert answer["node_errors"] == {}, answer
    return answer["prompt_id"]


def finished(url: str, prompt_id: str, log_path) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (history := get_json(f"{url}/history/{prompt_id}")).get(prompt_id):
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)
    return history[prompt_id]


def webp_frames(url: str, saved: dict):
    """The frames of a saved animated WEBP, as (frames, 64, 64, 3) uint8."""
    import numpy as np
    from PIL import Image

    query = urlencode({k: saved[k] for k in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{url}/view?{query}", timeout=30) as response:
        image = Image.open(BytesIO(response.read()))
        assert image.format == "WEBP"
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames)


def tracebacks(log: str) -> list[str]:
    """Each traceback of a log: its indented frames and the exception line after them."""
    found = []
    lines = log.splitlines()
    for start, line in enumerate(lines):
        if line.startswith("Traceback (most recent call last):"):
            end = start + 1
            while end < len(lines) and lines[end].startswith(" "):
                end += 1
            found.append("\n".join(lines[start:end + 1]))
    return found


def test_the_extension_loads_through_comfyuis_loader_without_errors(comfyui) -> None:
    url, _, log_path = comfyui
    log = log_path.read_text()
    ours = [line for line in log.splitlines() if "custom_nodes/comfyui-aid" in line]
    assert ours and not [line for line in ours if "IMPORT FAILED" in line], ours
    # ComfyUI's own audio nodes fail without torchaudio; no traceback may point at us.
    for traceback in tracebacks(log):
        assert "comfyui-aid" not in traceback and str(REPO_ROOT) not in traceback, traceback
    info = get_json(url + "/object_info")
    assert set(load_package().NODE_CLASS_MAPPINGS) <= set(info)


def test_object_info_lists_our_nodes_as_defined(comfyui) -> None:
    url, _, _ = comfyui
    info = get_json(url + "/object_info")
    package = load_package()
    for type_name, cls in package.NODE_CLASS_MAPPINGS.items():
        entry = info[type_name]
        assert entry["display_name"] == package.NODE_DISPLAY_NAME_MAPPINGS[type_name]
        assert entry["category"] == cls.CATEGORY and entry["output"] == list(cls.RETURN_TYPES)
        assert entry["description"] == cls.DESCRIPTION
        expected = {section: list(inputs) for section, inputs in cls.INPUT_TYPES().items()}
        assert entry["input_order"] == expected
    # The user's AID file and the demo's, listed from demo_model/ after it.
    assert info["AIDApply"]["input"]["required"]["aid_weights"][0] == [
        "aid.safetensors", "aid_final.safetensors"]
    assert info["AIDInstructionList"]["output_is_list"] == [True]


def test_the_recorded_core_nodes_match_this_comfyui(comfyui) -> None:
    url, _, _ = comfyui
    info = get_json(url + "/object_info")
    recorded = json.loads((REPO_ROOT / "tests" / "comfy_core_nodes.json").read_text())
    for type_name, node in recorded.items():
        if type_name.startswith("_"):
            continue
        entry = info[type_name]
        names = [i["name"] for i in node["inputs"]]
        order = entry["input_order"]
        assert names == order.get("required", []) + order.get("optional", []), type_name
        assert [o["type"] for o in node["outputs"]] == entry["output"], type_name


def test_every_shipped_api_workflow_passes_comfyuis_prompt_validation(comfyui) -> None:
    """POST /prompt validates before queueing (400 with node errors otherwise). The real-model
    ones then stop at their first loader, the stand-in files not being models."""
    url, _, log_path = comfyui
    queued = {path.stem: queue(url, json.loads(path.read_text())) for path in API.glob("*.json")
              if path.stem != "aid_demo"}  # the demo is run below
    assert set(queued) == {"aid_predict_typed_states", "aid_predict_llava_states",
                           "aid_manipulation", "aid_long_video"}
    for name, prompt_id in queued.items():
        entry = finished(url, prompt_id, log_path)
        (error,) = [m for kind, m in entry["status"]["messages"] if kind == "execution_error"]
        assert error["node_type"] in ("ImageOnlyCheckpointLoader", "CLIPLoader",
                                      "AIDLoadStatePrompter"), (name, error)
    # A prompt ComfyUI refuses comes back with our message, before anything runs.
    broken = copy.deepcopy(json.loads((API / "aid_predict_typed_states.json").read_text()))
    broken["2"]["inputs"]["aid_weights"] = "missing.safetensors"
    with pytest.raises(urllib.error.HTTPError) as refused:
        post_json(url + "/prompt", {"prompt": broken})
    body = json.loads(refused.value.read())
    details = body["node_errors"]["2"]["errors"][0]["details"]
    assert "aid_weights: 'missing.safetensors' is not in" in details


def test_the_demo_workflow_runs_as_shipped_and_writes_its_video(comfyui) -> None:
    """The demo API workflow, unchanged, on a ComfyUI with nothing uploaded or downloaded:
    the bundled miniature, on the CPU."""
    from aid_model.synthetic import generate_clip

    url, _, log_path = comfyui
    entry = finished(url, queue(url, DEMO), log_path)
    assert entry["status"]["status_str"] == "success", (entry["status"],
                                                        log_path.read_text()[-3000:])
    (saved,) = entry["outputs"][DEMO_SAVE]["images"]
    frames = webp_frames(url, saved)
    assert frames.shape == (8, 64, 64, 3)
    scene = generate_clip(DEMO_SCENE_SEED).frames[0]
    assert (frames[0] == scene).all()  # the given frame, kept (lossless WEBP)
    assert abs(frames[1:].astype(int) - scene).max() > 10  # and a predicted future


def test_an_instruction_list_runs_the_graph_once_per_instruction(comfyui) -> None:
    """aid_manipulation's mechanism on the demo model: AID Instruction List into AID
    Conditioning gives one video per instruction through the core sampler and save nodes."""
    url, _, log_path = comfyui
    prompt = copy.deepcopy(DEMO)
    prompt["20"] = {"class_type": "AIDInstructionList", "inputs": {"instructions": (
        "move the green circle left\nmove the green circle up\nmove the green circle down")}}
    prompt["4"]["inputs"]["instruction"] = ["20", 0]
    prompt["4"]["inputs"]["states"] = ""
    prompt[DEMO_SIGMAS]["inputs"]["steps"] = 4
    entry = finished(url, queue(url, prompt), log_path)
    assert entry["status"]["status_str"] == "success", log_path.read_text()[-3000:]
    videos = [webp_frames(url, saved) for saved in entry["outputs"][DEMO_SAVE]["images"]]
    assert len(videos) == 3 and all(video.shape == (8, 64, 64, 3) for video in videos)
    assert (videos[0][0] == videos[1][0]).all()  # one given frame
    assert (videos[0][1:] != videos[1][1:]).any()  # three futures


def test_an_interrupt_during_sampling_leaves_comfyui_able_to_run_the_next_prompt(
        comfyui) -> None:
    import aiohttp

    url, _, log_path = comfyui
    client_id = uuid.uuid4().hex
    prompt = copy.deepcopy(DEMO)
    prompt[DEMO_NOISE]["inputs"]["noise_seed"] = 1  # not the cached run above
    # Long enough that the interrupt always lands during sampling (a late one would stop the
    # next prompt instead).
    prompt[DEMO_SIGMAS]["inputs"]["steps"] = 400

    async def interrupt_at_step(step: int) -> str:
        async with aiohttp.ClientSession() as session, session.ws_connect(
                f"{url.replace('http', 'ws')}/ws?clientId={client_id}") as socket_:
            prompt_id = queue(url, prompt, client_id)
            async for message in socket_:
                if message.type != aiohttp.WSMsgType.TEXT:
                    continue
                event = json.loads(message.data)
                data = event.get("data", {})
                if (event["type"] == "progress" and data.get("node") == DEMO_SAMPLER
                        and data["value"] >= step):
                    post_json(url + "/interrupt", {})
                    return prompt_id
        raise AssertionError("the socket closed before sampling")

    prompt_id = asyncio.run(asyncio.wait_for(interrupt_at_step(2), RUN_TIMEOUT))
    entry = finished(url, prompt_id, log_path)
    assert entry["status"]["status_str"] == "error"
    (stopped,) = [m for kind, m in entry["status"]["messages"]
                  if kind == "execution_interrupted"]
    assert stopped["node_type"] == "SamplerCustomAdvanced"
    # The next prompt runs as usual.
    prompt[DEMO_NOISE]["inputs"]["noise_seed"] = 2
    prompt[DEMO_SIGMAS]["inputs"]["steps"] = 3
    entry = finished(url, queue(url, prompt), log_path)
    assert entry["status"]["status_str"] == "success", log_path.read_text()[-3000:]
    (saved,) = entry["outputs"][DEMO_SAVE]["images"]
    assert webp_frames(url, saved).shape == (8, 64, 64, 3)


def test_the_batch_client_runs_the_demo_and_uploads_frames_into_the_real_workflows(
        comfyui, tmp_path) -> None:
    from PIL import Image

    from comfy_batch import BatchOptions, RetryPolicy, run_batch

    url, _, log_path = comfyui
    jobs = tmp_path / "jobs.csv"
    jobs.write_text("id,seed,AID Demo Scene.direction,KarrasScheduler.steps\n"
                    "up,1000000009,up,2\n")
    options = BatchOptions(server=url, workflow=API / "aid_demo.json", jobs=jobs,
                           out=tmp_path / "demo", poll_interval=0.5,
                           retry=RetryPolicy(give_up_after=RUN_TIMEOUT))
    report = run_batch(options, log=lambda _: None)
    assert not report.failed, [reason for _, reason in report.failed] + [
        log_path.read_text()[-3000:]]
    assert [p.suffix for p in (tmp_path / "demo" / "up").iterdir()] == [".webp"]
    # An image column replaces the example frame by a Load Image of the upload: ComfyUI
    # accepts the prompt, which then stops at the stand-in checkpoint, not before.
    Image.new("RGB", (40, 30), (200, 120, 40)).save(tmp_path / "frame.png")
    jobs.write_text("id,image,instruction\ncup,frame.png,push the cup\n")
    options = BatchOptions(server=url, workflow=API / "aid_predict_typed_states.json",
                           jobs=jobs, out=tmp_path / "typed", poll_interval=0.5,
                           retry=RetryPolicy(give_up_after=RUN_TIMEOUT))
    report = run_batch(options, log=lambda _: None)
    ((_, reason),) = report.failed
    assert re.match(r"node (1 \(ImageOnlyCheckpointLoader\)|3 \(CLIPLoader\))", reason), reason

"""The extension inside a real ComfyUI (only when ``COMFYUI_PATH`` names an unpacked ComfyUI).

Starts ``main.py --cpu`` on 127.0.0.1 with a temporary base directory whose
``custom_nodes/comfyui-aid`` links to this repository and whose ``models/`` holds the tiny
models; checks /object_info against our node classes and the recorded core nodes, then
runs a bundled API workflow through the batch client (/upload/image, /prompt, /history,
/view) and the demo workflow, as shipped, through /prompt. ``COMFYUI_PYTHON`` picks the
interpreter that has ComfyUI's requirements (default: this one). Without ``COMFYUI_PATH``
the module is skipped as a whole, with one line that says how to run it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from test_nodes_support import (
    AID_FILE,
    REPO_ROOT,
    SVD_FILE,
    SVD_HEADS,
    TEXT_ENCODER_FILE,
    TEXT_HEADS,
    build_models_dir,
    load_package,
)

COMFYUI = os.environ.get("COMFYUI_PATH")
if not COMFYUI:
    pytest.skip("real-ComfyUI tests: to run them, set COMFYUI_PATH to an unpacked ComfyUI "
                "(the folder with main.py)", allow_module_level=True)
START_TIMEOUT = 240.0
RUN_TIMEOUT = 300.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def comfyui(tmp_path_factory, svd_fixture_checkpoint, clip_text_fixture_dir):
    from PIL import Image

    base = tmp_path_factory.mktemp("comfyui-base")
    (base / "custom_nodes").mkdir()
    (base / "custom_nodes" / "comfyui-aid").symlink_to(REPO_ROOT, target_is_directory=True)
    build_models_dir(base / "models", svd_fixture_checkpoint, clip_text_fixture_dir)
    (base / "input").mkdir()
    Image.new("RGB", (40, 30), (200, 120, 40)).save(base / "input" / "example.png")
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
                get_json(url + "/object_info/AIDLoadModel")
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


def test_object_info_lists_our_nodes_as_defined(comfyui) -> None:
    url, _, _ = comfyui
    info = get_json(url + "/object_info")
    package = load_package()
    for type_name, cls in package.NODE_CLASS_MAPPINGS.items():
        assert type_name in info, f"{type_name} missing from /object_info"
        entry = info[type_name]
        assert entry["display_name"] == package.NODE_DISPLAY_NAME_MAPPINGS[type_name]
        assert entry["category"] == cls.CATEGORY and entry["output"] == list(cls.RETURN_TYPES)
        expected = {section: list(inputs) for section, inputs in cls.INPUT_TYPES().items()}
        assert entry["input_order"] == expected
    assert info["AIDLoadModel"]["input"]["required"]["svd_model"][0] == [SVD_FILE]


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


def test_a_bundled_workflow_runs_through_the_batch_client(comfyui, tmp_path) -> None:
    from comfy_batch import BatchOptions, RetryPolicy, run_batch

    url, base, log_path = comfyui
    image = tmp_path / "frame.png"
    shutil.copy(base / "input" / "example.png", image)
    header = ["id", "image", "instruction", "states", "Load AID Model.svd_model",
              "Load AID Model.aid_weights", "Load AID Model.dtype",
              "Load AID Model.unet_head_channels", "Load AID Model.clip_num_heads",
              "Load AID Text Encoder.text_encoder", "Load AID Text Encoder.num_heads",
              "AIDBuildMCondition.width", "AIDBuildMCondition.height", "AIDSampler.steps"]
    row = ["tiny", image.name, "put the cup on the plate", "a cup | a plate", SVD_FILE,
           AID_FILE, "fp32", str(SVD_HEADS["unet_head_channels"]),
           str(SVD_HEADS["clip_num_heads"]), TEXT_ENCODER_FILE, str(TEXT_HEADS), "16", "16",
           "2"]
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(",".join(header) + "\n" + ",".join(f'"{v}"' for v in row) + "\n")
    options = BatchOptions(
        server=url, workflow=REPO_ROOT / "workflows" / "api" / "aid_predict_typed_states.json",
        jobs=jobs, out=tmp_path / "out", poll_interval=0.5,
        retry=RetryPolicy(give_up_after=RUN_TIMEOUT))
    report = run_batch(options, log=lambda _: None)
    assert not report.failed, [reason for _, reason in report.failed] + [
        log_path.read_text()[-3000:]]
    files = sorted(p.suffix for p in (tmp_path / "out" / "tiny").iterdir())
    assert files == [".mp4", ".webp"]


def test_the_demo_workflow_runs_via_prompt_on_the_bundled_model(comfyui) -> None:
    """The demo API workflow as shipped, posted to /prompt with its example frame in
    ComfyUI's input folder: the bundled miniature, on the CPU, with no downloads."""
    from io import BytesIO
    from urllib.parse import urlencode

    from PIL import Image

    url, base, log_path = comfyui
    shutil.copy(REPO_ROOT / "workflows" / "demo_scene.png", base / "input" / "demo_scene.png")
    workflow = json.loads((REPO_ROOT / "workflows" / "api" / "aid_demo.json").read_text())
    request = urllib.request.Request(
        url + "/prompt", data=json.dumps({"prompt": workflow}).encode(),
        headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        prompt_id = json.loads(response.read())["prompt_id"]
    deadline = time.monotonic() + RUN_TIMEOUT
    while not (history := get_json(f"{url}/history/{prompt_id}")).get(prompt_id):
        assert time.monotonic() < deadline, log_path.read_text()[-3000:]
        time.sleep(0.5)
    entry = history[prompt_id]
    assert entry["status"]["status_str"] == "success", (entry["status"],
                                                        log_path.read_text()[-3000:])
    (saved,) = entry["outputs"]["30"]["images"]
    query = urlencode({k: saved[k] for k in ("filename", "subfolder", "type")})
    with urllib.request.urlopen(f"{url}/view?{query}", timeout=30) as response:
        webp = Image.open(BytesIO(response.read()))
    assert webp.format == "WEBP" and webp.size == (64, 64) and webp.n_frames == 8

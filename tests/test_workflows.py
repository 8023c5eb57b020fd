"""The bundled workflows, checked against the node definitions so that a renamed input
cannot silently break a user's graph: our nodes (NODE_CLASS_MAPPINGS) and ComfyUI's core
nodes (tests/comfy_core_nodes.json, recorded from ComfyUI's /object_info). The API copies
also run, in graph order, through our nodes with tiny models and stand-ins for the core
nodes, and must yield frames; the demo workflow runs as shipped, on the bundled miniature."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from test_nodes_support import (
    AID_FILE,
    REPO_ROOT,
    SVD_FILE,
    SVD_HEADS,
    TEXT_ENCODER_FILE,
    TEXT_HEADS,
    TINY_SIZE,
    load_package,
)

# The shared fixtures (tiny models folder, loaded handles) register once per session.
pytest_plugins = ["test_nodes_support"]

WORKFLOWS = REPO_ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
DEMO_API = WORKFLOWS / "api" / "aid_demo.json"
# The demo workflow's loader has no tiny stand-in: it runs on the bundled model instead.
TINY_API_FILES = [path for path in API_FILES if path != DEMO_API]
CORE = {k: v for k, v in json.loads(
    (REPO_ROOT / "tests" / "comfy_core_nodes.json").read_text()).items() if not k.startswith("_")}
MAPPINGS = load_package().NODE_CLASS_MAPPINGS
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UI_ONLY = {"Note", "MarkdownNote"}
# Our combos that list files on the user's machine (checked at run time, not here).
FILE_COMBOS = {"svd_model", "aid_weights", "text_encoder", "vlm"}


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def specs(class_type: str) -> list[dict]:
    """Inputs in ComfyUI's order: name, section, type, and the widget constraints."""
    if class_type in CORE:
        return CORE[class_type]["inputs"]
    found = []
    types = MAPPINGS[class_type].INPUT_TYPES()
    for section in ("required", "optional"):
        for name, (kind, options) in types.get(section, {}).items():
            entry = {"name": name, "section": section,
                     "type": "COMBO" if isinstance(kind, list) else kind}
            if isinstance(kind, list):
                entry["options"] = "dynamic" if name in FILE_COMBOS else kind
            entry.update({k: options[k] for k in ("min", "max") if k in options})
            if options.get("control_after_generate"):
                entry["control_after_generate"] = True
            found.append(entry)
    return found


def outputs(class_type: str) -> list[str]:
    if class_type in CORE:
        return [output["type"] for output in CORE[class_type]["outputs"]]
    return list(MAPPINGS[class_type].RETURN_TYPES)


def is_output_node(class_type: str) -> bool:
    return CORE[class_type]["output_node"] if class_type in CORE else False


def check_value(where: str, spec: dict, value) -> None:
    kind = spec["type"]
    if kind == "INT":
        assert isinstance(value, int) and not isinstance(value, bool), where
    elif kind == "FLOAT":
        assert isinstance(value, (int, float)) and not isinstance(value, bool), where
    elif kind == "BOOLEAN":
        assert isinstance(value, bool), where
    elif kind == "STRING":
        assert isinstance(value, str), where
    elif kind == "COMBO":
        options = spec.get("options")
        assert isinstance(value, str), where
        if isinstance(options, list):
            assert value in options, f"{where}: {value!r} not in {options}"
    else:
        raise AssertionError(f"{where}: a {kind} input needs a link, got {value!r}")
    if "min" in spec:
        assert spec["min"] <= value <= spec["max"], f"{where}: {value} outside range"


def test_there_are_the_bundled_workflows() -> None:
    names = {path.stem for path in UI_FILES}
    assert names == {path.stem for path in API_FILES}
    assert {"aid_predict_llava_states", "aid_predict_typed_states", "aid_long_video",
            "aid_manipulation", "aid_demo"} <= names


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_api_workflow_fits_the_node_definitions(path: Path) -> None:
    workflow = read(path)
    for node_id, node in workflow.items():
        class_type = node["class_type"]
        assert class_type in MAPPINGS or class_type in CORE, f"{node_id}: unknown {class_type}"
        inputs = node["inputs"]
        known = {spec["name"]: spec for spec in specs(class_type)}
        assert set(inputs) <= set(known), f"{node_id}: unknown inputs {set(inputs) - set(known)}"
        for name, spec in known.items():
            where = f"node {node_id} ({class_type}).{name}"
            if name not in inputs:
                assert spec["section"] == "optional", f"{where}: required input missing"
                continue
            value = inputs[name]
            if isinstance(value, list):  # a link: [source id, output slot]
                source, slot = value
                assert source in workflow, f"{where}: links to missing node {source}"
                produced = outputs(workflow[source]["class_type"])
                assert slot < len(produced), where
                assert spec["type"] in ("*", produced[slot]), (
                    f"{where}: {produced[slot]} linked into a {spec['type']} input")
            else:
                check_value(where, spec, value)
    assert any(is_output_node(node["class_type"]) for node in workflow.values())
    graph_order(workflow)  # acyclic


def graph_order(workflow: dict) -> list[str]:
    """Node ids so that every node comes after the nodes it takes inputs from."""
    order: list[str] = []
    remaining = set(workflow)
    while remaining:
        ready = sorted((n for n in remaining if all(
            v[0] not in remaining for v in workflow[n]["inputs"].values()
            if isinstance(v, list))), key=int)
        assert ready, f"cycle among nodes {sorted(remaining)}"
        order += ready
        remaining -= set(ready)
    return order


def ui_to_api(ui: dict) -> dict:
    """The API form of a UI workflow, as ComfyUI's frontend makes it: notes dropped, widget
    values named by the input order, UI-only widget values (seed control, upload) skipped."""
    links = {link[0]: link for link in ui["links"]}
    api = {}
    for node in ui["nodes"]:
        if node["type"] in UI_ONLY:
            continue
        linked = {item["name"]: item["link"] for item in node["inputs"]
                  if item.get("link") is not None}
        values = iter(node.get("widgets_values", []))
        inputs = {}
        for spec in specs(node["type"]):
            name = spec["name"]
            if spec["type"] in WIDGETS:
                value = next(values)
                for _ in range(bool(spec.get("control_after_generate")) + bool(spec.get("upload"))):
                    next(values)
                inputs[name] = value
            if name in linked:
                link = links[linked[name]]
                inputs[name] = [str(link[1]), link[2]]
        assert next(values, None) is None, f"node {node['id']}: extra widget values"
        api[str(node["id"])] = {"inputs": inputs, "class_type": node["type"]}
    return api


def check_frontend_format(ui: dict) -> None:
    """The fields the ComfyUI frontend's workflow schema (zComfyWorkflow, version 0.4, in
    comfyui-frontend-package 1.27) requires, with their shapes."""
    assert ui["version"] == 0.4 and isinstance(ui["last_link_id"], int)
    assert isinstance(ui["last_node_id"], int) and isinstance(ui["links"], list)
    for node in ui["nodes"]:
        assert isinstance(node["id"], int) and isinstance(node["type"], str)
        assert len(node["pos"]) == 2 and len(node["size"]) == 2
        assert isinstance(node["flags"], dict) and isinstance(node["properties"], dict)
        assert isinstance(node["order"], int) and isinstance(node["mode"], int)
        assert isinstance(node["widgets_values"], list)
    for link in ui["links"]:
        assert len(link) == 6 and isinstance(link[5], str)
    for group in ui["groups"]:
        assert isinstance(group["title"], str) and len(group["bounding"]) == 4
    assert {"scale", "offset"} <= set(ui["extra"]["ds"])


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_is_wired_consistently(path: Path) -> None:
    ui = read(path)
    check_frontend_format(ui)
    nodes = {node["id"]: node for node in ui["nodes"]}
    assert ui["last_node_id"] >= max(nodes) and ui["last_link_id"] >= max(
        (link[0] for link in ui["links"]), default=0)
    for link_id, source, slot, target, target_slot, kind in ui["links"]:
        output = nodes[source]["outputs"][slot]
        entry = nodes[target]["inputs"][target_slot]
        assert link_id in output["links"] and entry["link"] == link_id, link_id
        assert output["type"] == kind == outputs(nodes[source]["type"])[slot]
        assert entry["type"] in (kind, "*"), (link_id, entry["type"], kind)
    for node in ui["nodes"]:
        if node["type"] in UI_ONLY:
            assert node["widgets_values"][0].strip(), f"empty note {node['id']}"
            continue
        known = {spec["name"]: spec for spec in specs(node["type"])}
        for entry in node["inputs"]:
            assert entry["name"] in known, (node["id"], entry["name"])
        linked = {entry["name"] for entry in node["inputs"] if entry.get("link") is not None}
        for name, spec in known.items():
            if spec["type"] not in WIDGETS and spec["section"] == "required":
                assert name in linked, f"node {node['id']} ({node['type']}): {name} unlinked"


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_and_api_versions_describe_the_same_graph(path: Path) -> None:
    api = read(WORKFLOWS / "api" / path.name)
    converted = ui_to_api(read(path))
    assert converted == {k: {"inputs": v["inputs"], "class_type": v["class_type"]}
                         for k, v in api.items()}


@pytest.mark.parametrize("path", UI_FILES, ids=lambda p: p.stem)
def test_ui_workflow_is_laid_out_with_a_note_in_every_group(path: Path) -> None:
    ui = read(path)

    def box(node):
        (x, y), (w, h) = node["pos"], node["size"]
        return x, y, x + w, y + h

    boxes = [box(node) for node in ui["nodes"]]
    for i, a in enumerate(boxes):  # readable: nodes do not overlap (title bar included)
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] + 30 <= b[1] or b[3] + 30 <= a[1], (a, b)
    assert ui["groups"]
    for group in ui["groups"]:
        x, y, w, h = group["bounding"]
        inside = [n for n, (x0, y0, x1, y1) in zip(ui["nodes"], boxes, strict=True)
                  if x <= x0 and y <= y0 and x1 <= x + w and y1 <= y + h]
        assert any(n["type"] in UI_ONLY for n in inside), f"group {group['title']!r} lacks a note"
        assert any(n["type"] not in UI_ONLY for n in inside), group["title"]


# --- running the API workflows ------------------------------------------------------------

TINY_INPUTS = {
    "AIDLoadModel": dict(svd_model=SVD_FILE, aid_weights=AID_FILE, dtype="fp32", **SVD_HEADS),
    "AIDLoadTextEncoder": dict(text_encoder=TEXT_ENCODER_FILE, dtype="fp32", num_heads=TEXT_HEADS),
    "AIDLoadStatePrompter": dict(vlm="tiny-llava/", dtype="fp32", max_new_tokens=6),
}
TINY_EVERYWHERE = dict(width=TINY_SIZE, height=TINY_SIZE, steps=2)


class CoreStandIns:
    """What the core nodes do with our outputs, recorded instead of saved. Load Image reads
    ``input_dir`` (ComfyUI's input folder) when given, else makes a random frame."""

    def __init__(self, input_dir: Path | None = None):
        self.input_dir = input_dir
        self.saved: dict[str, torch.Tensor] = {}
        self.texts: dict[str, str] = {}

    def run(self, node_id: str, class_type: str, inputs: dict):
        if class_type == "LoadImage" and self.input_dir is not None:
            return load_image(self.input_dir / inputs["image"])
        if class_type == "LoadImage":
            generator = torch.Generator().manual_seed(int(node_id))
            return (torch.rand(1, 24, 20, 3, generator=generator), torch.zeros(1, 24, 20))
        if class_type in ("PrimitiveString", "PrimitiveStringMultiline"):
            return (inputs["value"],)
        if class_type == "ImageBatch":
            return (torch.cat([inputs["image1"], inputs["image2"]]),)
        if class_type == "CreateVideo":
            return ({"images": inputs["images"], "fps": inputs["fps"]},)
        if class_type in ("SaveAnimatedWEBP", "SaveAnimatedPNG", "SaveImage", "PreviewImage",
                          "SaveWEBM"):
            self.saved[node_id] = inputs["images"]
            return ()
        if class_type == "SaveVideo":
            self.saved[node_id] = inputs["video"]["images"]
            return ()
        if class_type == "PreviewAny":
            self.texts[node_id] = inputs["source"]
            return ()
        raise AssertionError(f"no stand-in for core node {class_type}")


def load_image(path: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """(IMAGE, MASK) of an RGB file, as ComfyUI's Load Image makes them."""
    from PIL import Image

    with Image.open(path) as file:
        pixels = torch.frombuffer(bytearray(file.convert("RGB").tobytes()), dtype=torch.uint8)
        height, width = file.height, file.width
    frame = pixels.reshape(1, height, width, 3).float() / 255.0
    return frame, torch.zeros(1, height, width)


_LOADER_CACHE: dict[str, tuple] = {}


def execute(workflow: dict, core: CoreStandIns | None = None) -> CoreStandIns:
    """Runs the graph in order; loader results are cached as ComfyUI caches them."""
    core = core or CoreStandIns()
    results: dict[str, tuple] = {}
    for node_id in graph_order(workflow):
        node = workflow[node_id]
        inputs = {name: results[value[0]][value[1]] if isinstance(value, list) else value
                  for name, value in node["inputs"].items()}
        class_type = node["class_type"]
        if class_type in MAPPINGS:
            key = json.dumps([class_type, node["inputs"]], sort_keys=True)
            if class_type.startswith("AIDLoad") and key in _LOADER_CACHE:
                results[node_id] = _LOADER_CACHE[key]
                continue
            cls = MAPPINGS[class_type]
            with torch.inference_mode():
                results[node_id] = getattr(cls(), cls.FUNCTION)(**inputs)
            if class_type.startswith("AIDLoad"):
                _LOADER_CACHE[key] = results[node_id]
        else:
            results[node_id] = core.run(node_id, class_type, inputs)
    return core


def tiny(workflow: dict) -> dict:
    for node in workflow.values():
        changes = {**TINY_INPUTS.get(node["class_type"], {}), **{
            k: v for k, v in TINY_EVERYWHERE.items() if k in node["inputs"]}}
        assert set(changes) <= set(node["inputs"]), (node["class_type"], changes)
        node["inputs"].update(changes)
    return workflow


@pytest.fixture(scope="module")
def vlm_models(tiny_models_dir):
    from test_states_prompter import build_tiny_llava

    folder = tiny_models_dir / "LLM" / "tiny-llava"
    created = not (folder / "config.json").is_file()
    if created:
        build_tiny_llava(folder)
    yield folder
    if created:  # the models folder is shared: leave it as other test modules expect it
        shutil.rmtree(folder)


EXPECTED_FRAMES = {  # T = 6 for the tiny AID model
    "aid_predict_llava_states": 6,
    "aid_predict_typed_states": 6,
    "aid_manipulation": 3 * 6,
    "aid_long_video": 6 + 2 * (6 - 2),
}


@pytest.mark.parametrize("path", TINY_API_FILES, ids=lambda p: p.stem)
def test_api_workflow_runs_through_the_nodes_and_yields_frames(path, models_dir, vlm_models,
                                                               one_thread) -> None:
    core = execute(tiny(read(path)))
    assert core.saved, "nothing reached a save node"
    frames = list(core.saved.values())
    for saved in frames:
        assert saved.shape == (EXPECTED_FRAMES[path.stem], TINY_SIZE, TINY_SIZE, 3)
        assert saved.dtype == torch.float32 and saved.min() >= 0.0 and saved.max() <= 1.0
        assert torch.equal(saved, frames[0])
    for text in core.texts.values():  # the VLM's states, one a line
        assert len(text.splitlines()) == 4


def test_the_demo_api_workflow_runs_on_the_bundled_model_as_the_library_does(one_thread) -> None:
    """As shipped (no tiny stand-ins): the bundled miniature, the example frame beside the
    workflows, the demo's settings; the frames are the library's own prediction."""
    from aid_model.demo.load import DEMO_OPTIONS, load_demo_pipeline

    workflow = read(DEMO_API)
    core = execute(workflow, CoreStandIns(input_dir=WORKFLOWS))
    (frames,) = core.saved.values()
    assert frames.shape == (8, 64, 64, 3)
    assert frames.dtype == torch.float32 and frames.min() >= 0.0 and frames.max() <= 1.0
    first, _ = load_image(WORKFLOWS / workflow["3"]["inputs"]["image"])
    assert torch.equal(frames[0], first[0])  # the given frame, kept at its place
    assert (frames[1:] - first).abs().amax() > 0.01  # something was predicted

    condition, sampler = workflow["8"]["inputs"], workflow["20"]["inputs"]
    options = DEMO_OPTIONS.with_(seed=sampler["seed"], guidance_interval=(0.0, 1000.0),
                                 decode_chunk_size=8)
    assert (condition["width"], condition["height"], sampler["steps"], sampler["sampler"],
            sampler["frame_scale"], sampler["text_scale"], sampler["fps"]) == (
        options.width, options.height, options.steps, options.sampler, options.frame_scale,
        options.text_scale, options.fps)
    with torch.inference_mode():
        expected = load_demo_pipeline().predict(
            [first[0].permute(2, 0, 1)], condition["instruction"],
            condition["states"].splitlines(), options)
    assert torch.equal(frames, expected)

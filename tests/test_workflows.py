"""The bundled workflows, checked against the node definitions so that a renamed input
cannot silently break a user's graph: our nodes (NODE_CLASS_MAPPINGS) and ComfyUI's core
nodes (tests/comfy_core_nodes.json, recorded from ComfyUI 0.3.64's /object_info). Each UI
file describes the graph of its API copy, has its thumbnail, and explains itself on the
canvas; the demo needs nothing but the extension. The workflows run in a real ComfyUI in
tests/test_comfyui_workflows.py.

The example frames (workflows/frames/) were drawn with PIL, as a few flat shapes each:

    from PIL import Image, ImageDraw
    def room(wall, table):  # a wall above a table top seen from the front
        image = Image.new("RGB", (256, 256), wall)
        draw = ImageDraw.Draw(image)
        draw.rectangle([0, 150, 256, 256], fill=table)
        draw.line([0, 150, 256, 150], fill=(90, 60, 35), width=3)
        return image, draw
    image, draw = room((214, 206, 190), (160, 112, 70))  # red_cup_on_table.png
    draw.ellipse([40, 178, 112, 192], fill=(120, 85, 55))
    draw.polygon([(48, 120), (104, 120), (98, 186), (54, 186)], fill=(200, 35, 40))
    draw.ellipse([48, 114, 104, 128], fill=(150, 20, 25))
    draw.arc([94, 132, 124, 168], start=-90, end=90, fill=(200, 35, 40), width=7)
    image, draw = room((200, 210, 220), (150, 120, 85))  # blue_ball_and_green_box.png
    draw.rectangle([150, 130, 226, 196], fill=(40, 140, 70))
    draw.polygon([(150, 130), (226, 130), (214, 112), (162, 112)], fill=(25, 95, 45))
    draw.ellipse([70, 190, 124, 204], fill=(110, 85, 60))
    draw.ellipse([72, 148, 122, 198], fill=(40, 80, 210))
    draw.ellipse([84, 158, 98, 170], fill=(140, 170, 240))
    image, draw = room((225, 222, 210), (120, 110, 100))  # cabinet_with_drawers.png
    draw.rectangle([58, 60, 198, 226], fill=(150, 100, 55), outline=(95, 60, 30), width=3)
    for top in (72, 150):
        draw.rectangle([70, top, 186, top + 64], fill=(175, 120, 70), outline=(95, 60, 30),
                       width=3)
        draw.ellipse([120, top + 26, 136, top + 40], fill=(60, 50, 40))
    # each saved with image.save(path, optimize=True)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from test_nodes_support import REPO_ROOT, load_package

WORKFLOWS = REPO_ROOT / "workflows"
UI_FILES = sorted(WORKFLOWS.glob("*.json"))
API_FILES = sorted((WORKFLOWS / "api").glob("*.json"))
REAL_MODEL = [p for p in UI_FILES if p.stem != "aid_demo"]
CORE = {k: v for k, v in json.loads(
    (REPO_ROOT / "tests" / "comfy_core_nodes.json").read_text()).items() if not k.startswith("_")}
MAPPINGS = load_package().NODE_CLASS_MAPPINGS
WIDGETS = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
UI_ONLY = {"Note", "MarkdownNote"}
# Our combos that list files on the user's machine (checked when queued, not here).
FILE_COMBOS = {"aid_weights", "vlm"}
# The frontend gives these INT widgets a "control after generate" widget of their own.
SEED_NAMES = {"seed", "noise_seed"}


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


def test_there_are_the_bundled_workflows_each_with_its_thumbnail() -> None:
    from PIL import Image

    names = {path.stem for path in UI_FILES}
    assert names == {path.stem for path in API_FILES}
    assert {"aid_predict_llava_states", "aid_predict_typed_states", "aid_long_video",
            "aid_manipulation", "aid_demo"} <= names
    for name in names:  # ComfyUI's template browser shows NAME.jpg beside NAME.json
        thumbnail = WORKFLOWS / f"{name}.jpg"
        assert thumbnail.stat().st_size < 100_000, name
        with Image.open(thumbnail) as image:
            assert image.format == "JPEG" and 256 <= image.width <= 1024, name


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
                control = spec.get("control_after_generate") or (
                    spec["type"] == "INT" and name in SEED_NAMES)
                for _ in range(bool(control) + bool(spec.get("upload"))):
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


def notes(path: Path) -> str:
    return "\n".join(n["widgets_values"][0] for n in read(path)["nodes"] if n["type"] in UI_ONLY)


@pytest.mark.parametrize("path", REAL_MODEL, ids=lambda p: p.stem)
def test_real_model_workflows_say_which_files_go_where(path: Path) -> None:
    text = notes(path)
    for needed in ("models/checkpoints", "stabilityai/stable-video-diffusion-img2vid-xt",
                   "models/aid", "docs/training.md", "models/text_encoders",
                   "laion/CLIP-ViT-H-14-laion2B-s32B-b79K", "open_clip_model.safetensors",
                   "Hugging Face"):
        assert needed in text, f"{path.name}: the notes do not say {needed!r}"
    assert "not downloaded" in text  # AID weights come from training, plainly
    api = read(WORKFLOWS / "api" / path.name)
    if any(node["class_type"] == "AIDLoadStatePrompter" for node in api.values()):
        assert "models/LLM" in text and "llava" in text.lower()


@pytest.mark.parametrize("path", API_FILES, ids=lambda p: p.stem)
def test_first_frames_are_shipped_with_the_extension(path: Path) -> None:
    """No workflow needs a file in ComfyUI's input/ folder: the real-model ones load a frame
    from workflows/frames/, the demo draws its own."""
    workflow = read(path)
    classes = [node["class_type"] for node in workflow.values()]
    assert "LoadImage" not in classes
    for node in workflow.values():
        if node["class_type"] == "AIDExampleFrame":
            assert (WORKFLOWS / "frames" / node["inputs"]["frame"]).is_file()
    if path.stem == "aid_demo":
        from aid_model.demo.paths import AID_FILE

        assert "AIDExampleFrame" not in classes and "AIDDemoScene" in classes
        (apply,) = [n for n in workflow.values() if n["class_type"] == "AIDApply"]
        assert apply["inputs"]["aid_weights"] == AID_FILE  # the demo's own, from demo_model/
        assert {"ImageOnlyCheckpointLoader", "CLIPLoader", "AIDLoadStatePrompter"}.isdisjoint(
            classes)
    else:
        assert classes.count("AIDExampleFrame") == 1


# --- the nodes the workflows add ------------------------------------------------------------


def test_example_frame_loads_a_shipped_frame_as_an_image() -> None:
    node = MAPPINGS["AIDExampleFrame"]
    names = node.INPUT_TYPES()["required"]["frame"][0]
    assert names == sorted(p.name for p in (WORKFLOWS / "frames").glob("*.png")) and names
    (image,) = node().load(names[0])
    assert image.shape == (1, 256, 256, 3) and image.dtype == torch.float32
    assert image.min() >= 0.0 and image.max() <= 1.0 and image.std() > 0.05
    assert node.VALIDATE_INPUTS(frame=names[0]) is True
    message = node.VALIDATE_INPUTS(frame="../README.md")
    assert message.startswith("frame: '../README.md'") and "Load Image" in message


def test_instruction_list_gives_one_item_per_line_and_refuses_none() -> None:
    node = MAPPINGS["AIDInstructionList"]
    assert node.OUTPUT_IS_LIST == (True,)
    assert node().split(" push it left \n\n lift it\n") == (["push it left", "lift it"],)
    with pytest.raises(ValueError, match=r"input .instructions..*at least one instruction"):
        node().split("\n  \n")

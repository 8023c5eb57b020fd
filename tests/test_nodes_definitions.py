"""The node classes as ComfyUI reads them: mappings, INPUT_TYPES, outputs, signatures, and
the package import ComfyUI performs."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import subprocess
import sys
import types

import pytest
from test_nodes_support import REPO_ROOT, load_package

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN"}
CUSTOM_TYPES = {"AID_VLM"}  # the extension's one type: ComfyUI has none for a VLM
COMFY_TYPES = {"IMAGE", "LATENT", "STRING", "MODEL", "CLIP", "CLIP_VISION", "VAE",
               "CONDITIONING", "GUIDER"}

MAPPINGS = load_package().NODE_CLASS_MAPPINGS
NODE_TYPES = sorted(MAPPINGS)


def test_every_node_has_a_display_name_and_the_mappings_are_exported() -> None:
    package = load_package()
    assert set(package.NODE_DISPLAY_NAME_MAPPINGS) == set(MAPPINGS)
    assert set(package.__all__) == {"NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"}
    assert len(set(package.NODE_DISPLAY_NAME_MAPPINGS.values())) == len(MAPPINGS)
    assert set(package.NODE_DISPLAY_NAME_MAPPINGS.values()) == {
        "Load AID Demo Model", "AID Demo Scene", "Apply AID", "AID Example Frame",
        "AID Instruction List", "AID Conditioning", "AID Guider", "AID Keep Reference Frames",
        "AID Long Video", "Load State Prompter", "Predict Future States"}


def input_items(cls):
    types_ = cls.INPUT_TYPES()
    assert set(types_) <= {"required", "optional", "hidden"}, set(types_)
    for section in ("required", "optional"):
        for name, spec in types_.get(section, {}).items():
            yield section, name, spec


@pytest.mark.parametrize("type_name", NODE_TYPES)
def test_input_types_are_valid(type_name: str) -> None:
    cls = MAPPINGS[type_name]
    assert type_name.startswith("AID")
    assert cls.CATEGORY == "AID" or cls.CATEGORY.startswith("AID/"), cls.CATEGORY
    assert isinstance(cls.DESCRIPTION, str) and len(cls.DESCRIPTION) > 40
    items = list(input_items(cls))
    assert items, "a node without inputs"
    for _section, name, spec in items:
        assert isinstance(spec, tuple) and len(spec) == 2, (name, spec)
        kind, options = spec
        assert options.get("tooltip"), f"{type_name}.{name} has no tooltip"
        if isinstance(kind, list):  # a combo
            assert all(isinstance(choice, str) for choice in kind)
            if "default" in options:
                assert options["default"] in kind, (name, options["default"])
            continue
        assert kind in WIDGET_TYPES | CUSTOM_TYPES | COMFY_TYPES, (name, kind)
        if kind in ("INT", "FLOAT"):
            low, high, default = options["min"], options["max"], options["default"]
            assert low <= default <= high, (name, low, default, high)
            number = int if kind == "INT" else (int, float)
            assert all(isinstance(v, number) for v in (low, high, default)), name
        elif kind == "BOOLEAN":
            assert isinstance(options["default"], bool), name
        elif kind == "STRING":
            assert isinstance(options.get("default", ""), str), name


@pytest.mark.parametrize("type_name", NODE_TYPES)
def test_outputs_and_function_match_the_inputs(type_name: str) -> None:
    cls = MAPPINGS[type_name]
    returns = cls.RETURN_TYPES
    assert isinstance(returns, tuple) and all(isinstance(t, str) for t in returns) and returns
    assert len(cls.RETURN_NAMES) == len(returns)
    assert len(cls.OUTPUT_TOOLTIPS) == len(returns)
    function = getattr(cls, cls.FUNCTION)
    parameters = inspect.signature(function).parameters
    names = [name for name in parameters if name != "self"]
    items = {name: section for section, name, _ in input_items(cls)}
    assert set(names) == set(items), f"{cls.FUNCTION} takes {names}, INPUT_TYPES {list(items)}"
    for name in names:
        has_default = parameters[name].default is not inspect.Parameter.empty
        assert has_default == (items[name] == "optional"), name
    validate = getattr(cls, "VALIDATE_INPUTS", None)
    if validate is not None:
        validated = [p for p in inspect.signature(validate).parameters]
        assert set(validated) <= set(items), validated


def test_every_custom_type_consumed_is_produced_by_a_node() -> None:
    produced = {t for cls in MAPPINGS.values() for t in cls.RETURN_TYPES}
    consumed = {spec[0] for cls in MAPPINGS.values() for _, _, spec in input_items(cls)
                if isinstance(spec[0], str)}
    assert consumed & CUSTOM_TYPES <= produced
    assert produced >= CUSTOM_TYPES


def test_the_package_loads_like_comfyui_loads_it_and_leaves_comfyuis_nodes_alone() -> None:
    """ComfyUI has its own top-level ``nodes`` module and imports the folder under its path
    as module name; our ``nodes`` must be reached relatively, ``aid_model`` absolutely."""
    comfy_nodes = types.ModuleType("nodes")
    saved = sys.modules.get("nodes")
    sys.modules["nodes"] = comfy_nodes
    name = "/custom_nodes/comfyui-aid copy"
    try:
        spec = importlib.util.spec_from_file_location(
            name, REPO_ROOT / "__init__.py", submodule_search_locations=[str(REPO_ROOT)])
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        assert sys.modules["nodes"] is comfy_nodes
        assert set(module.NODE_CLASS_MAPPINGS) == set(MAPPINGS)
        assert str(REPO_ROOT) in sys.path
    finally:
        for key in [k for k in sys.modules if k == name or k.startswith(name + ".")]:
            del sys.modules[key]
        if saved is None:
            sys.modules.pop("nodes", None)
        else:
            sys.modules["nodes"] = saved


def imported_modules(path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for item in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(item, ast.Import):
            found |= {alias.name.split(".")[0] for alias in item.names}
        elif isinstance(item, ast.ImportFrom) and item.level == 0 and item.module:
            found.add(item.module.split(".")[0])
    return found


COMFY_MODULES = {"comfy", "folder_paths", "latent_preview", "comfy_api", "comfy_extras",
                 "nodes", "server", "execution"}


def test_the_library_never_imports_comfyui() -> None:
    offenders = {str(path.relative_to(REPO_ROOT)): imported_modules(path) & COMFY_MODULES
                 for path in (REPO_ROOT / "aid_model").rglob("*.py")}
    assert not {path: found for path, found in offenders.items() if found}


def test_no_node_module_imports_comfyui_when_loaded() -> None:
    """ComfyUI's modules are imported inside the functions that use them, so the package
    (and the fallbacks of ``comfy_services``) load without ComfyUI."""
    for path in (REPO_ROOT / "nodes").glob("*.py"):
        found = imported_modules(path, top_level_only=True) & COMFY_MODULES
        assert not found, (path.name, found)


def test_loading_the_package_does_not_import_diffusers() -> None:
    """ComfyUI imports every extension at start-up; the heavy libraries wait for a node."""
    code = (
        "import sys; sys.path[:0] = ['tests']\n"
        "import test_nodes_support as s; s.load_package()\n"
        "print(sorted(m for m in ('diffusers', 'transformers') if m in sys.modules))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"

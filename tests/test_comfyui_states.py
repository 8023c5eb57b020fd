"""State prompting in a real ComfyUI: Load State Prompter and Predict Future States run the
VLM through ComfyUI's model management and leave it unloaded (its patcher out of ComfyUI's
loaded models, the CUDA cache emptied) before AID samples, unless keep_loaded; their STRING
is AID Conditioning's (and AID Long Video's) ``states``.

The VLM is the tiny random LLaVA of ``test_states_prompter``; the SVD is fixture A built with
ComfyUI's own classes, with a random AID applied. Run with ``make test-comfyui``.
"""

from __future__ import annotations

import torch
from comfyui_host import import_comfyui

COMFY_NODES = import_comfyui()

import pytest  # noqa: E402
from comfyui_fixtures import (  # noqa: E402
    fixture_clip,
    fixture_clip_vision,
    fixture_svd_model,
    fixture_vae,
)
from test_comfyui_native_parity import library_pipeline  # noqa: E402
from test_nodes_support import load_package  # noqa: E402
from test_states_prompter import build_tiny_llava  # noqa: E402

NODES = load_package().NODE_CLASS_MAPPINGS
SIZE, FRAMES = 16, 6
INSTRUCTION = "move the red cup to the left"


@pytest.fixture(scope="module")
def vlm_name(tmp_path_factory) -> str:
    import folder_paths

    root = tmp_path_factory.mktemp("LLM")
    build_tiny_llava(root / "tiny-llava")
    folder_paths.add_model_folder_path("LLM", str(root))
    return "tiny-llava/"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    import folder_paths

    folder = tmp_path_factory.mktemp("aid")
    folder_paths.add_model_folder_path("aid", str(folder))
    library = library_pipeline(folder, "states.safetensors", trained=True)
    model = NODES["AIDApply"]().apply(fixture_svd_model(), "states.safetensors", 1.0)[0]
    return {"model": model, "vae": fixture_vae(), "library": library,
            "clip_vision": fixture_clip_vision(tmp_path_factory.mktemp("clip_vision")),
            "clip": fixture_clip()}


def frame() -> torch.Tensor:
    return torch.rand(1, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(4))


def loaded_models() -> list:
    import comfy.model_management

    return [entry.model for entry in comfy.model_management.current_loaded_models]


def predict(vlm_name: str, keep_loaded: bool, monkeypatch):
    """(states STRING, the VLM's patcher, was the cache emptied) of Load State Prompter →
    Predict Future States."""
    import comfy.model_management

    emptied = []
    empty = comfy.model_management.soft_empty_cache
    monkeypatch.setattr(comfy.model_management, "soft_empty_cache",
                        lambda *args, **kwargs: (emptied.append(1), empty(*args, **kwargs)))
    (vlm,) = NODES["AIDLoadStatePrompter"]().load(vlm_name, "fp32", keep_loaded, False)
    with torch.inference_mode():
        (states,) = NODES["AIDPredictFutureStates"]().predict(vlm, frame(), INSTRUCTION, 3)
    monkeypatch.undo()
    return states, vlm.managed._patcher, bool(emptied)


def test_the_vlm_is_unloaded_after_predicting_unless_kept(vlm_name, monkeypatch) -> None:
    states, patcher, emptied = predict(vlm_name, False, monkeypatch)
    assert len(states.splitlines()) == 3
    assert patcher is not None  # the VLM went through ComfyUI's model management
    assert patcher not in loaded_models() and emptied
    _, kept, _ = predict(vlm_name, True, monkeypatch)
    assert kept in loaded_models()  # ComfyUI frees it when a model needs the room
    import comfy.model_management

    comfy.model_management.unload_all_models()


def test_predicted_states_are_aid_conditionings_states(vlm_name, host, monkeypatch) -> None:
    """The STRING plugs into AID Conditioning's ``states`` and reads as the library reads the
    same prompter's states."""
    from aid_model.pipeline import PredictionRequest

    output = NODES["AIDPredictFutureStates"].RETURN_TYPES[0]
    assert output == NODES["AIDConditioning"].INPUT_TYPES()["optional"]["states"][0]
    assert output == NODES["AIDLongVideo"].INPUT_TYPES()["optional"]["states"][0]
    states, vlm, _ = predict(vlm_name, False, monkeypatch)
    torch.manual_seed(0)
    full, _, _, _ = NODES["AIDConditioning"]().encode(
        host["model"], host["clip_vision"], host["vae"], host["clip"], frame(), INSTRUCTION,
        SIZE, SIZE, FRAMES, 127, 7, 0.0, states)
    request = PredictionRequest([frame()[0].movedim(-1, 0)], INSTRUCTION, states.splitlines())
    library = host["library"].encode_conditions([request], SIZE, SIZE).full_mcondition[0]
    mcondition = full[0][1]["model_conds"]["aid_mcondition"].cond
    assert (mcondition - library).abs().max() <= 2e-5
    assert vlm not in loaded_models()  # not resident beside the SVD's models

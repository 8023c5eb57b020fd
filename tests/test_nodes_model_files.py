"""The model files the nodes list and load, outside ComfyUI (its fallbacks): Apply AID's
list of AID weights and its errors when one is missing, names that cannot leave the model
folders, and the state prompter nodes on a tiny LLaVA."""

from __future__ import annotations

import shutil

import pytest
import torch
from test_nodes_support import AID_FILE, image, load_package, node, services

# The shared fixtures (tiny models folder) register once per session.
pytest_plugins = ["test_nodes_support"]

pytestmark = pytest.mark.usefixtures("one_thread")


def combo(type_name: str, input_name: str) -> list[str]:
    return load_package().NODE_CLASS_MAPPINGS[type_name].INPUT_TYPES()["required"][input_name][0]


def test_apply_aid_lists_the_aid_folder_and_the_vlm_list_its_folders(models_dir) -> None:
    (models_dir / "aid" / "sub").mkdir()
    (models_dir / "aid" / "sub" / "other.safetensors").write_bytes(b"")
    (models_dir / "aid" / "notes.txt").write_text("not weights")
    folder = models_dir / "LLM" / "org" / "some-vlm"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    try:
        assert combo("AIDApply", "aid_weights") == [AID_FILE, "sub/other.safetensors"]
        assert combo("AIDLoadStatePrompter", "vlm") == ["org/some-vlm/"]
    finally:
        shutil.rmtree(models_dir / "aid" / "sub")
        (models_dir / "aid" / "notes.txt").unlink()
        shutil.rmtree(models_dir / "LLM")


def test_a_missing_aid_file_is_named_when_queued_with_the_folder_to_create(
        models_dir, monkeypatch, tmp_path) -> None:
    apply = load_package().NODE_CLASS_MAPPINGS["AIDApply"]
    assert apply.VALIDATE_INPUTS(aid_weights=AID_FILE) is True
    problem = apply.VALIDATE_INPUTS(aid_weights="aid_final.safetensors")
    assert problem.startswith("aid_weights: 'aid_final.safetensors' is not in")
    assert str(models_dir / "aid") in problem
    monkeypatch.setattr(services(), "_models_dir_override", tmp_path)
    problem = apply.VALIDATE_INPUTS(aid_weights="aid_final.safetensors")
    assert problem.startswith("aid_weights: 'aid_final.safetensors' not found: no folder")
    assert f"create {tmp_path / 'aid'}" in problem


def test_names_cannot_leave_the_model_folders(models_dir) -> None:
    apply = load_package().NODE_CLASS_MAPPINGS["AIDApply"]
    for name in ("../aid/" + AID_FILE, str(models_dir / "aid" / AID_FILE), "/"):
        assert services().resolve_model_path(("checkpoints",), name) is None
        assert "is not in" in apply.VALIDATE_INPUTS(aid_weights=name)


@pytest.fixture(scope="module")
def llava_models(tmp_path_factory):
    from test_states_prompter import build_tiny_llava

    root = tmp_path_factory.mktemp("vlm-models")
    build_tiny_llava(root / "llava" / "tiny-llava")
    return root


def test_state_prompter_nodes_write_one_state_a_line(llava_models, monkeypatch) -> None:
    monkeypatch.setattr(services(), "_models_dir_override", llava_models)
    assert combo("AIDLoadStatePrompter", "vlm") == ["tiny-llava/"]
    (vlm,) = node("AIDLoadStatePrompter").load("tiny-llava/", "auto", False, False,
                                               max_new_tokens=6)
    with torch.inference_mode():
        (states,) = node("AIDPredictFutureStates").predict(vlm, image(2), "pour the water", 3)
    # A random model writes no list, so each of the 3 states falls back to the instruction.
    assert states.splitlines() == ["pour the water"] * 3
    with pytest.raises(ValueError, match="input 'instruction'"):
        node("AIDPredictFutureStates").predict(vlm, image(1), "  ", 3)
    with pytest.raises(TypeError, match=r"input 'vlm' expects an AID_VLM.*Load State Prompter"):
        node("AIDPredictFutureStates").predict(image(1), image(1), "pour the water", 3)
    with pytest.raises(ValueError, match=r"input 'vlm' = 'missing/'.*models"):
        node("AIDLoadStatePrompter").load("missing/", "auto", False, False)


def test_models_not_kept_loaded_go_back_to_the_offload_device(monkeypatch) -> None:
    moves = []

    class Recording(torch.nn.Linear):
        def to(self, *args, **kwargs):
            moves.append(args[0] if args else kwargs.get("device"))
            return self

    module = Recording(2, 2)
    cpu = torch.device("cpu")
    kept = services().ManagedModel("kept", {"m": module}, True, (torch.device("meta"), cpu))
    with kept.loaded():
        pass
    assert moves == [torch.device("meta")]
    moves.clear()
    emptied = []
    monkeypatch.setattr(services(), "soft_empty_cache", lambda: emptied.append(1))
    released = services().ManagedModel("released", {"m": module}, False,
                                       (torch.device("meta"), cpu))
    with pytest.raises(RuntimeError), released.loaded():
        raise RuntimeError("a failing node still releases the model")
    assert moves == [torch.device("meta"), cpu] and emptied == [1]

"""Loader nodes on tiny files in a models folder: lists, loading, errors in ComfyUI's terms,
the tokenizer ComfyUI ships, the state prompter nodes, and the bundled demo model's loader."""

from __future__ import annotations

import shutil
import sys

import pytest
import torch
from test_nodes_support import (
    AID_FILE,
    BARE_TEXT_ENCODER_FILE,
    SVD_FILE,
    SVD_HEADS,
    TEXT_ENCODER_FILE,
    TEXT_HEADS,
    image,
    load_package,
    node,
    services,
)

# The shared fixtures (tiny models folder, loaded handles) register once per session.
pytest_plugins = ["test_nodes_support"]

pytestmark = pytest.mark.usefixtures("one_thread")


def mapping() -> dict[str, type]:
    return load_package().NODE_CLASS_MAPPINGS


def combo(type_name: str, input_name: str) -> list[str]:
    return mapping()[type_name].INPUT_TYPES()["required"][input_name][0]


def test_lists_show_the_files_and_folders_of_the_model_folders(models_dir, tmp_path) -> None:
    # A diffusers folder and a transformers text encoder folder are listed with a "/".
    diffusers = models_dir / "diffusers" / "svd-diffusers"
    for part in ("unet", "vae", "image_encoder"):
        (diffusers / part).mkdir(parents=True, exist_ok=True)
    folder = models_dir / "text_encoders" / "clip-folder"
    folder.mkdir(exist_ok=True)
    (folder / "config.json").write_text("{}")
    # Weights inside listed folders are not listed one by one.
    (folder / "model.safetensors").write_bytes(b"")
    inside = models_dir / "checkpoints" / "svd-in-checkpoints"
    for part in ("unet", "vae", "image_encoder"):
        (inside / part).mkdir(parents=True, exist_ok=True)
    (inside / "unet" / "diffusion_pytorch_model.safetensors").write_bytes(b"")
    (models_dir / "clip").mkdir(exist_ok=True)
    (models_dir / "clip" / "legacy.safetensors").write_bytes(b"")
    try:
        assert combo("AIDLoadModel", "svd_model") == [SVD_FILE, "svd-diffusers/",
                                                      "svd-in-checkpoints/"]
        assert combo("AIDLoadModel", "aid_weights") == ["none", AID_FILE]
        encoders = combo("AIDLoadTextEncoder", "text_encoder")
        files = sorted([BARE_TEXT_ENCODER_FILE, TEXT_ENCODER_FILE, "legacy.safetensors"])
        assert encoders == [*files, "clip-folder/"]
        assert combo("AIDLoadStatePrompter", "vlm") == []
    finally:
        shutil.rmtree(models_dir / "diffusers")
        shutil.rmtree(inside)
        shutil.rmtree(folder)
        shutil.rmtree(models_dir / "clip")


def test_load_aid_model_attaches_the_aid_weights(loaded) -> None:
    from aid_model.aid import AIDModel

    assert isinstance(loaded.model.aid, AIDModel)
    assert loaded.model.aid.config.num_frames == 6
    assert loaded.model.label == f"{SVD_FILE} + {AID_FILE}"
    assert loaded.svd.aid is None
    assert loaded.model.components.dtype == torch.float32
    assert "dqformer" in loaded.model.managed.modules


def test_auto_dtype_is_float32_on_a_cpu(models_dir) -> None:
    (model,) = node("AIDLoadModel").load(SVD_FILE, "none", "auto", False, **SVD_HEADS)
    assert model.components.dtype == torch.float32
    assert model.managed.keep_loaded is False


def test_a_missing_checkpoint_names_the_input_and_the_folders(models_dir) -> None:
    with pytest.raises(ValueError) as failure:
        node("AIDLoadModel").load("svd_xt.safetensors", "none", "fp32", True)
    message = str(failure.value)
    assert "input 'svd_model' = 'svd_xt.safetensors'" in message
    assert str(models_dir / "checkpoints") in message and "diffusers" in message


def test_a_missing_weights_folder_says_to_create_it(models_dir, monkeypatch, tmp_path) -> None:
    shutil.copytree(models_dir / "checkpoints", tmp_path / "checkpoints", symlinks=True)
    monkeypatch.setattr(services(), "_models_dir_override", tmp_path)
    cls = mapping()["AIDLoadModel"]
    problem = cls.VALIDATE_INPUTS(svd_model=SVD_FILE, aid_weights="aid.safetensors")
    assert problem.startswith("aid_weights: 'aid.safetensors' not found: no folder")
    assert f"create {tmp_path / 'aid'}" in problem
    assert cls.VALIDATE_INPUTS(svd_model=SVD_FILE, aid_weights="none") is True
    with pytest.raises(ValueError, match=r"input 'aid_weights'.*create"):
        node("AIDLoadModel").load(SVD_FILE, "aid.safetensors", "fp32", True, **SVD_HEADS)


def test_names_cannot_leave_the_model_folders(models_dir) -> None:
    for name in ("../aid/" + AID_FILE, str(models_dir / "aid" / AID_FILE), "/"):
        assert services().resolve_model_path(("checkpoints",), name) is None
        problem = mapping()["AIDLoadModel"].VALIDATE_INPUTS(svd_model=name)
        assert isinstance(problem, str) and "not in" in problem


def test_a_file_that_is_not_aid_weights_is_refused_with_the_input_named(
        models_dir, clip_text_fixture_dir) -> None:
    wrong = models_dir / "aid" / "text_tower.safetensors"
    shutil.copy(clip_text_fixture_dir / "openclip_text.safetensors", wrong)
    try:
        with pytest.raises(ValueError) as failure:
            node("AIDLoadModel").load(SVD_FILE, wrong.name, "fp32", True, **SVD_HEADS)
    finally:
        wrong.unlink()
    assert str(failure.value).startswith("input 'aid_weights' = 'text_tower.safetensors'")
    assert "not an AID weight file" in str(failure.value)


def test_text_encoder_with_its_own_tokenizer_matches_the_library(loaded,
                                                                 clip_text_fixture_dir) -> None:
    from tiny_models import fixture_text_encoder

    reference = fixture_text_encoder(clip_text_fixture_dir)
    texts = ["put the cup on the plate", ""]
    assert torch.equal(loaded.text_encoder.encoder.encode(texts), reference.encode(texts))


def test_a_text_encoder_without_tokenizer_uses_comfyuis_tokenizer(
        models_dir, comfy_tokenizer_dir, clip_text_fixture_dir) -> None:
    """comfy/sd1_tokenizer has the same BPE files with OpenAI's config (pad <|endoftext|>);
    open_clip's ids (pad 0, literal specials as text) must come out all the same."""
    from tiny_models import fixture_text_encoder

    (bare,) = node("AIDLoadTextEncoder").load(BARE_TEXT_ENCODER_FILE, "fp32", True,
                                              num_heads=TEXT_HEADS)
    reference = fixture_text_encoder(clip_text_fixture_dir)
    texts = ["put the cup on the plate!", "", "a literal <|endoftext|> !!"]
    assert torch.equal(bare.encoder.tokenize(texts), reference.tokenize(texts))
    assert bare.encoder.tokenize([""])[0, 2:].eq(0).all()


def test_without_any_tokenizer_the_error_says_what_to_do(models_dir, monkeypatch) -> None:
    monkeypatch.delenv(services().ENV_TOKENIZER_DIR)
    with pytest.raises(ValueError, match=r"input 'text_encoder'.*vocab.json"):
        node("AIDLoadTextEncoder").load(BARE_TEXT_ENCODER_FILE, "fp32", True,
                                        num_heads=TEXT_HEADS)


@pytest.mark.parametrize(("type_name", "other", "call"), [
    ("AIDBuildMCondition", "text_encoder",
     lambda n, bad, ld: n.build(bad, image(1), "x", "", 16, 16, ld.text_encoder)),
    ("AIDBuildMCondition", "model",
     lambda n, bad, ld: n.build(ld.model, image(1), "x", "", 16, 16, bad)),
    ("AIDSampler", "model",
     lambda n, bad, ld: n.sample(ld.model, bad, 0, 2, "euler", 1.5, 7.5, 0, 7, 127, 0.02)),
    ("AIDDecode", "text_encoder",
     lambda n, bad, ld: n.decode(bad, {"samples": torch.zeros(6, 4, 8, 8)}, 8, True)),
])
def test_a_wrong_model_type_names_the_input_and_the_node_to_connect(type_name, other, call,
                                                                    loaded) -> None:
    wrong = [torch.zeros(1, 8, 8, 3), {"samples": torch.zeros(1)}, getattr(loaded, other)]
    for bad in wrong:
        with pytest.raises(TypeError) as failure:
            call(node(type_name), bad, loaded)
        message = str(failure.value)
        assert message.startswith("input '") and "connect a '" in message


def test_a_text_encoder_of_another_width_is_refused(loaded, monkeypatch) -> None:
    monkeypatch.setattr(type(loaded.text_encoder.encoder), "width", property(lambda self: 768))
    with pytest.raises(ValueError, match=r"input 'text_encoder'.*768.*64"):
        node("AIDBuildMCondition").build(loaded.model, image(1), "x", "", 16, 16,
                                         loaded.text_encoder)


def test_an_aid_model_without_text_encoder_asks_for_one(loaded) -> None:
    with pytest.raises(ValueError, match=r"'text_encoder' is not connected.*Load AID Text"):
        node("AIDBuildMCondition").build(loaded.model, image(1), "x", "", 16, 16)


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
    with pytest.raises(ValueError, match=r"input 'vlm' = 'missing/'.*models"):
        node("AIDLoadStatePrompter").load("missing/", "auto", False, False)


def test_load_aid_demo_model_gives_the_bundled_miniature(one_thread) -> None:
    from aid_model.aid import AIDModel
    from aid_model.demo import configs

    cls = mapping()["AIDLoadDemoModel"]
    assert cls.VALIDATE_INPUTS(dtype="fp32") is True
    with torch.inference_mode():  # as ComfyUI runs every node
        model, encoder = node("AIDLoadDemoModel").load("auto", False)  # auto: fp32 on a CPU
    assert isinstance(model.aid, AIDModel) and model.aid.config.num_frames == configs.NUM_FRAMES
    assert model.components.dtype == torch.float32
    assert {"unet", "vae", "image_encoder", "dqformer"} <= set(model.managed.modules)
    assert model.managed.keep_loaded is False and encoder.managed.keep_loaded is False
    assert encoder.encoder.width == model.context_width == configs.CONTEXT_WIDTH
    handles = sys.modules[f"{load_package().__name__}.nodes.handles"]
    assert isinstance(model, handles.AIDModelHandle)
    assert isinstance(encoder, handles.TextEncoderHandle)
    # Both outputs plug into the nodes that take the real loaders' outputs.
    with torch.inference_mode():
        (conditioning,) = node("AIDBuildMCondition").build(
            model, image(1, 64, 64), "move the green circle left", "", 64, 64, encoder)
    assert conditioning.model is model and conditioning.text_encoder is encoder


def test_a_missing_demo_model_is_reported_when_queued_and_when_run(monkeypatch,
                                                                   tmp_path) -> None:
    import aid_model.demo.load as demo_load

    complete = demo_load.demo_files
    monkeypatch.setattr(demo_load, "demo_files", lambda folder=None: complete(tmp_path))
    cls = mapping()["AIDLoadDemoModel"]
    problem = cls.VALIDATE_INPUTS(dtype="fp32")
    assert isinstance(problem, str) and str(tmp_path) in problem
    assert "incomplete" in problem and "make demo-train" in problem
    with pytest.raises(FileNotFoundError, match="incomplete"):
        node("AIDLoadDemoModel").load("fp32", True)


def test_the_demo_model_node_checks_dtype_itself() -> None:
    # Naming 'dtype' in VALIDATE_INPUTS makes ComfyUI leave that input's check to the node.
    problem = mapping()["AIDLoadDemoModel"].VALIDATE_INPUTS(dtype="fp8")
    assert isinstance(problem, str) and problem.startswith("dtype: 'fp8' is not one of auto")

"""Native AID in a real ComfyUI gives the library's numbers (issue #36's proof).

Fixture A's SVD built with ComfyUI's own classes, an AID with random non-zero weights (every
trained tensor, the base's cross-attention included) through Apply AID and AID
Conditioning, against the library's ``AIDPipeline`` on the same SVD, AID file, text tower
and inputs: the UNet output and the denoiser, a 4-step dual-CFG Euler run through core
DualCFGGuider (regular) + KSamplerSelect + SamplerCustomAdvanced, a fresh AID leaving SVD
bit-identical, the input MODEL untouched, and Apply AID's errors.

Run with ``make test-comfyui``; skipped with one line elsewhere.
"""

from __future__ import annotations

import sys

import torch
from comfyui_host import import_comfyui

COMFY_NODES = import_comfyui()

import pytest  # noqa: E402
from comfyui_fixtures import (  # noqa: E402
    CLIP_TEXT_FIXTURE,
    SVD_FIXTURE,
    fixture_clip,
    fixture_clip_vision,
    fixture_svd_model,
    fixture_vae,
)
from test_nodes_support import load_package  # noqa: E402
from tiny_models import fixture_svd_components, fixture_text_encoder  # noqa: E402

from aid_model.aid import AIDConfig, attach_aid, save_aid_weights, trainable_parameters  # noqa: E402
from aid_model.conditioning import svd_added_time_ids  # noqa: E402
from aid_model.pipeline import AIDPipeline, PredictionOptions, PredictionRequest  # noqa: E402
from aid_model.sampling import VideoCondition, karras_sigmas  # noqa: E402
from aid_model.sampling.edm import v_prediction_scalings  # noqa: E402

CONFIG = AIDConfig(num_frames=6, num_states=2, dqformer_heads=4, queries_per_frame=5)
FRAMES, SIZE = 6, 16  # fixture A: 6 frames of 16×16, latents 8×8
INSTRUCTION = "move the red cup to the left (slowly)"
STATES = ["the cup on the right", "the cup in the middle", "the cup on the left"]
SEED = 11
AUGMENTATION = 0.02
FRAME_SCALE, TEXT_SCALE = 2.0, 3.5
TOLERANCE, SAMPLING_TOLERANCE = 2e-5, 1e-4

NODES = load_package().NODE_CLASS_MAPPINGS


def randomise(model, seed: int) -> None:
    """Every trained tensor non-zero and away from its initial value (the zero-initialised
    projections included), as training would leave them."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in trainable_parameters(model).values():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise * 0.3 / max(1, parameter.shape[-1]) ** 0.5)


@pytest.fixture(scope="module")
def aid_folder(tmp_path_factory):
    import folder_paths

    folder = tmp_path_factory.mktemp("aid")
    folder_paths.add_model_folder_path("aid", str(folder))
    return folder


def library_pipeline(folder, name: str, trained: bool):
    """The library's AID on fixture A, saved to ``folder/name`` for Apply AID."""
    components = fixture_svd_components(SVD_FIXTURE / "svd_tiny_sgm.safetensors")
    torch.manual_seed(0)
    model = attach_aid(components, CONFIG)
    if trained:
        randomise(model, seed=5)
    save_aid_weights(model, folder / name)
    return AIDPipeline(components, model, fixture_text_encoder(CLIP_TEXT_FIXTURE))


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    """ComfyUI's own SVD (MODEL, VAE, CLIP_VISION) of fixture A and the text fixture as
    ComfyUI's SD 2.x CLIP."""
    return {"model": fixture_svd_model(), "vae": fixture_vae(),
            "clip_vision": fixture_clip_vision(tmp_path_factory.mktemp("clip_vision")),
            "clip": fixture_clip()}


@pytest.fixture(scope="module")
def trained(aid_folder):
    return library_pipeline(aid_folder, "random.safetensors", trained=True)


def reference_frames() -> torch.Tensor:
    """K = 2 reference frames (K, H, W, 3) in [0, 1], at the video's size."""
    return torch.rand(2, SIZE, SIZE, 3, generator=torch.Generator().manual_seed(2))


def node_conditionings(host, model):
    """AID Conditioning's outputs, its augmentation noise drawn as the library draws it
    (the first draw of a generator seeded with the seed)."""
    torch.manual_seed(SEED)
    return NODES["AIDConditioning"]().encode(
        model, host["clip_vision"], host["vae"], host["clip"], reference_frames(), INSTRUCTION,
        SIZE, SIZE, FRAMES, 127, 7, AUGMENTATION, "\n".join(STATES))


def library_options() -> PredictionOptions:
    return PredictionOptions(height=SIZE, width=SIZE, num_frames=FRAMES, steps=4,
                             sampler="euler", frame_scale=FRAME_SCALE, text_scale=TEXT_SCALE,
                             fps=7, motion_bucket_id=127, cond_aug=AUGMENTATION, seed=SEED)


def library_branches(pipeline):
    """The library's three branch conditions and initial noise for the test's request."""
    frames = list(reference_frames().movedim(-1, 1))
    request = PredictionRequest(frames, INSTRUCTION, STATES, SEED)
    options = pipeline.check_inputs(library_options(), [len(frames)], [SEED])
    conditions = pipeline.encode_conditions([request], SIZE, SIZE)
    branches, noise = pipeline._frame_conditions(conditions, options, [SEED])
    return conditions, branches, noise


def applied(host, name: str, strength: float = 1.0):
    return NODES["AIDApply"]().apply(host["model"], name, strength)[0]


def comfy_unet_call(clone, cond: VideoCondition, unet_input, c_noise):
    """ComfyUI's UNet (patched clone) on the library's inputs, through the clone's wrapper
    as sampling calls it. unet_input (1, T, 8, h, w) → (T, 4, h, w)."""
    import comfy.model_management

    comfy.model_management.load_models_gpu([clone, *clone.get_additional_models()])
    unet = clone.model.diffusion_model
    y = clone.model.encode_adm(fps=7, motion_bucket_id=127, augmentation_level=AUGMENTATION)
    options = {"wrappers": clone.wrappers}
    kwargs = {} if cond.mcondition is None else {"aid_mcondition": cond.mcondition[0]}
    with torch.no_grad():
        return unet(unet_input[0], c_noise.expand(FRAMES),
                    context=cond.image_embeddings.expand(FRAMES, -1, -1),
                    y=y.expand(FRAMES, -1), num_video_frames=FRAMES,
                    transformer_options=options, **kwargs)


def test_conditioning_gives_the_librarys_mcondition_frames_and_micro_conditioning(
        host, trained) -> None:
    clone = applied(host, "random.safetensors")
    full, frame_only, neither, latent = node_conditionings(host, clone)
    _, (null_b, frame_b, full_b), _ = library_branches(trained)
    for (context, values), branch in ((full[0], full_b), (frame_only[0], frame_b),
                                      (neither[0], null_b)):
        torch.testing.assert_close(context, branch.image_embeddings, atol=1e-5, rtol=0)
        torch.testing.assert_close(values["concat_latent_image"], branch.concat_latents[0],
                                   atol=1e-5, rtol=0)
        mcondition = values["model_conds"]["aid_mcondition"].cond
        torch.testing.assert_close(mcondition, branch.mcondition[0], atol=1e-5, rtol=0)
    assert latent["samples"].shape == (FRAMES, 4, SIZE // 2, SIZE // 2)
    y = clone.model.encode_adm(**{k: full[0][1][k] for k in
                                  ("fps", "motion_bucket_id", "augmentation_level")})
    ids = svd_added_time_ids(7, 127, AUGMENTATION)
    reference = trained.denoiser.unet.base.add_time_proj(ids.flatten()).reshape(1, -1)
    torch.testing.assert_close(y, reference, atol=1e-6, rtol=0)


def test_comfyuis_clip_encodes_texts_as_the_librarys_text_encoder(host, trained) -> None:
    """The shared text fixture: the 9 golden strings and 13 tokenizer probes (curly quotes,
    entities, ligatures, literal special tokens, ...), e_t as the DQFormer reads it."""
    import json

    from comfyui_fixtures import CLIP_TEXT_FIXTURE

    native_patch = sys.modules[f"{load_package().__name__}.nodes.native_patch"]
    rows = json.loads((CLIP_TEXT_FIXTURE / "tokenizer_check.json").read_text())["rows"]
    texts = [row["text"] for row in rows] + [""]
    native = native_patch.encode_texts(host["clip"], texts)
    library = trained.text_encoder.encode(texts)
    assert native.shape == library.shape == (len(texts), 77, 64)
    assert (native - library).abs().max() <= TOLERANCE


def test_unet_and_denoiser_give_the_librarys_numbers(host, trained) -> None:
    clone = applied(host, "random.safetensors")
    _, branches, _ = library_branches(trained)
    denoiser = trained.denoiser
    generator = torch.Generator().manual_seed(4)
    for cond in branches:
        for sigma in (700.0, 1.5):
            sigma_t = torch.tensor([sigma])
            x = torch.randn(1, FRAMES, 4, SIZE // 2, SIZE // 2, generator=generator) * sigma
            _, _, c_in, c_noise = v_prediction_scalings(sigma_t)
            unet_input = torch.cat([x * c_in, cond.concat_latents], dim=2)
            with torch.no_grad():
                library_out = denoiser.network(unet_input, c_noise, cond)[0]
                library_denoised = denoiser(x, sigma_t, cond)[0]
            native_out = comfy_unet_call(clone, cond, unet_input, c_noise)
            assert (native_out - library_out).abs().max() <= TOLERANCE
            kwargs = {} if cond.mcondition is None else {"aid_mcondition": cond.mcondition[0]}
            y = clone.model.encode_adm(fps=7, motion_bucket_id=127,
                                       augmentation_level=AUGMENTATION)
            with torch.no_grad():
                native_denoised = clone.model.apply_model(
                    x[0], sigma_t.expand(FRAMES), c_concat=cond.concat_latents[0],
                    c_crossattn=cond.image_embeddings.expand(FRAMES, -1, -1),
                    y=y.expand(FRAMES, -1), num_video_frames=FRAMES,
                    transformer_options={"wrappers": clone.wrappers}, **kwargs)
            assert (native_denoised - library_denoised).abs().max() <= TOLERANCE
    # The instruction reaches the output: without its MCondition the UNet answers otherwise.
    plain = comfy_unet_call(clone, VideoCondition(**{**branches[2].__dict__,
                                                     "mcondition": None}),
                            unet_input, c_noise)
    assert (plain - native_out).abs().max() > 1e-3


class LibraryNoise:
    """A NOISE for SamplerCustomAdvanced: the library's initial noise for the seed."""

    def __init__(self, noise: torch.Tensor):
        self.noise, self.seed = noise, SEED

    def generate_noise(self, input_latent):
        return self.noise[0].clone()


def sample_native(model, conditionings, noise):
    full, frame_only, neither, latent = conditionings
    guider = COMFY_NODES.NODE_CLASS_MAPPINGS["DualCFGGuider"]().get_guider(
        model, full, frame_only, neither, TEXT_SCALE, FRAME_SCALE, "regular")[0]
    sampler = COMFY_NODES.NODE_CLASS_MAPPINGS["KSamplerSelect"]().get_sampler("euler")[0]
    sigmas = karras_sigmas(4)
    advanced = COMFY_NODES.NODE_CLASS_MAPPINGS["SamplerCustomAdvanced"]()
    output = advanced.sample(LibraryNoise(noise), guider, sampler, sigmas, latent)
    output = output[0] if isinstance(output, tuple) else output.result[0]
    return output["samples"]


def test_dual_cfg_euler_run_ends_where_the_librarys_does(host, trained) -> None:
    clone = applied(host, "random.safetensors")
    conditionings = node_conditionings(host, clone)
    _, _, noise = library_branches(trained)
    rows = []  # ComfyUI batches the three branches (same-shaped MConditions): 3·T rows a call
    handle = clone.model.diffusion_model.register_forward_pre_hook(
        lambda module, args: rows.append(args[0].shape[0]))
    try:
        native = sample_native(clone, conditionings, noise)
    finally:
        handle.remove()
    assert rows == [3 * FRAMES] * 4
    library = trained.sample_latents(*library_run(trained))[0]
    scale = 0.18215  # the sampler's state is the latent × SD's scale factor
    assert (native * scale - library * scale).abs().max() <= SAMPLING_TOLERANCE


def library_run(pipeline):
    frames = list(reference_frames().movedim(-1, 1))
    request = PredictionRequest(frames, INSTRUCTION, STATES, SEED)
    options = pipeline.check_inputs(library_options(), [len(frames)], [SEED])
    return pipeline.encode_conditions([request], SIZE, SIZE), options, [SEED]


def test_a_fresh_aid_leaves_comfyuis_svd_bit_identical(host, aid_folder) -> None:
    library_pipeline(aid_folder, "fresh.safetensors", trained=False)
    base = host["model"]
    clone = applied(host, "fresh.safetensors")
    conditionings = node_conditionings(host, clone)
    noise = torch.randn(1, FRAMES, 4, SIZE // 2, SIZE // 2,
                        generator=torch.Generator().manual_seed(9))
    with_aid = sample_native(clone, conditionings, noise)
    plain = sample_native(base, conditionings, noise)
    assert torch.equal(with_aid, plain)


def test_the_input_model_is_unchanged_by_apply_aid_and_by_sampling_the_clone(
        host, trained) -> None:
    import comfy.model_management

    base = host["model"]
    unet = base.model.diffusion_model
    before = {k: v.clone() for k, v in base.model.state_dict().items()}
    clone = applied(host, "random.safetensors")
    assert not base.patches and not base.injections and not base.additional_models
    assert base.get_attachment("aid") is None and not base.wrappers.get("diffusion_model")
    noise = torch.randn(1, FRAMES, 4, SIZE // 2, SIZE // 2,
                        generator=torch.Generator().manual_seed(9))
    conditionings = node_conditionings(host, clone)
    sample_native(clone, conditionings, noise)
    assert any(m._forward_hooks for m in unet.modules())  # the clone is still loaded
    comfy.model_management.load_models_gpu([base])  # what sampling with the input does
    assert not any(m._forward_hooks for m in unet.modules())
    after = base.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_apply_aid_refuses_a_non_svd_model_and_aid_weights_of_another_base(
        host, aid_folder, trained) -> None:
    import shutil

    import comfy.model_patcher
    import comfy.supported_models

    from aid_model.demo.paths import AID_FILE, DEMO_DIR

    sd15 = comfy.supported_models.SD15({
        "model_channels": 32, "in_channels": 4, "out_channels": 4, "num_res_blocks": [1],
        "channel_mult": [1], "transformer_depth": [1], "transformer_depth_output": [1, 1],
        "transformer_depth_middle": 1, "context_dim": 64, "num_head_channels": 16,
        "use_linear_in_transformer": False,
        "adm_in_channels": None, "use_temporal_attention": False, "image_size": 32,
        "use_spatial_transformer": True, "legacy": False})
    sd15_model = comfy.model_patcher.ModelPatcher(
        sd15.get_model({}, device="cpu"), load_device="cpu", offload_device="cpu")
    with pytest.raises(ValueError, match=r"^model: AID attaches to Stable Video Diffusion"):
        NODES["AIDApply"]().apply(sd15_model, "random.safetensors", 1.0)

    shutil.copy(DEMO_DIR / AID_FILE, aid_folder / "demo.safetensors")  # the miniature's base
    with pytest.raises(ValueError, match=r"^aid_weights: .*trained on another base UNet"):
        NODES["AIDApply"]().apply(host["model"], "demo.safetensors", 1.0)

    message = NODES["AIDApply"].VALIDATE_INPUTS(aid_weights="missing.safetensors")
    assert message.startswith("aid_weights: 'missing.safetensors' is not in")
    with pytest.raises(ValueError, match=r"missing\.safetensors"):
        NODES["AIDApply"]().apply(host["model"], "missing.safetensors", 1.0)


def test_aid_conditioning_refuses_what_it_cannot_use(host, trained) -> None:
    conditioning = NODES["AIDConditioning"]()
    clone = applied(host, "random.safetensors")
    frames = reference_frames()

    def encode(model=clone, clip=host["clip"], references=frames, video_frames=FRAMES,
               size=SIZE):
        return conditioning.encode(model, host["clip_vision"], host["vae"], clip, references,
                                   INSTRUCTION, size, size, video_frames, 127, 7, 0.0)

    with pytest.raises(ValueError, match=r"^model: this MODEL has no AID applied"):
        encode(model=host["model"])
    with pytest.raises(ValueError, match=r"^reference_frames: 6 frames given for "
                                         r"video_frames = 6"):
        encode(references=torch.rand(FRAMES, SIZE, SIZE, 3))
    with pytest.raises(ValueError, match=r"^video_frames: 8, but this AID model "
                                         r"\(random.safetensors\) predicts T = 6"):
        encode(video_frames=8)
    with pytest.raises(ValueError, match=r"^width: 18 is not a multiple of 4"):
        encode(size=18)
    with pytest.raises(ValueError, match=r"^clip: this CLIP gives 32-wide text embeddings but "
                                         r"the AID model reads 64-wide ones"):
        encode(clip=fixture_clip(width=32))

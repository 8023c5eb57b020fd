"""The bundled miniature as ComfyUI's own MODEL, CLIP_VISION, VAE and CLIP (Load AID Demo
Model) gives the library's numbers, and samples with core nodes; AID Demo Scene draws its
world. Needs a real ComfyUI (``make test-comfyui``); skipped with one line without it."""

from __future__ import annotations

import asyncio
import re
import sys

import pytest
import torch
from comfyui_host import import_comfyui

comfy_nodes = import_comfyui()

from test_nodes_support import PACKAGE_NAME, load_package  # noqa: E402

from aid_model.demo.paths import DEMO_DIR  # noqa: E402

FRAMES = 8
UNET_TOLERANCE = 2e-5
VAE_TOLERANCE = 1e-4
CLIP_TOLERANCE = 1e-5
SCENE_SEED = 1_000_000_007


def demo_module():
    load_package()
    return sys.modules[f"{PACKAGE_NAME}.nodes.demo_model"]


def node(type_name: str):
    return load_package().NODE_CLASS_MAPPINGS[type_name]()


def core(type_name: str):
    return comfy_nodes.NODE_CLASS_MAPPINGS[type_name]()


def max_error(ours: torch.Tensor, theirs: torch.Tensor) -> float:
    assert ours.shape == theirs.shape
    return (ours.float() - theirs.float()).abs().max().item()


@pytest.fixture(scope="module")
def native():
    """(MODEL, CLIP_VISION, VAE, CLIP) as the node returns them."""
    return node("AIDDemoModel").load("fp32")


@pytest.fixture(scope="module")
def library():
    """The library's demo SVD components and text encoder (float32, CPU)."""
    from aid_model.svd import load_svd
    from aid_model.text_encoder import load_text_encoder

    return load_svd(DEMO_DIR / "svd"), load_text_encoder(DEMO_DIR / "text_encoder")


@pytest.fixture(scope="module")
def scene_frames() -> torch.Tensor:
    """(8, 64, 64, 3) float in [0, 1]: a clip of the miniature's world, as ComfyUI IMAGEs."""
    from aid_model.synthetic import generate_clip

    return torch.from_numpy(generate_clip(SCENE_SEED).frames).float() / 255.0


def latent_shape(library) -> tuple[int, int, int]:
    """(channels, height, width) of the bundled miniature's latents of a 64×64 frame, from
    its VAE's config (each level after the first halves the frame)."""
    config = library[0].vae.config
    side = 64 // 2 ** (len(config.block_out_channels) - 1)
    return config.latent_channels, side, side


def svd_inputs(library, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    noisy = torch.randn(1, FRAMES, *latent_shape(library), generator=generator)
    concat = torch.randn(1, FRAMES, *latent_shape(library), generator=generator)
    context = torch.randn(1, 1, 64, generator=generator)
    return noisy, concat, context


def test_unet_output_matches_the_library(native, library):
    model = native[0].model
    unet = library[0].unet
    noisy, concat, context = svd_inputs(library)
    sample = torch.cat([noisy, concat], dim=2)
    c_noise = torch.tensor([0.25 * torch.log(torch.tensor(3.0)).item()])
    ids = torch.tensor([[FRAMES - 1.0, 127.0, 0.02]])
    with torch.no_grad():
        ours = model.diffusion_model(
            sample.flatten(0, 1), c_noise.repeat(FRAMES), context=context.repeat(FRAMES, 1, 1),
            y=model.encode_adm(fps=FRAMES, motion_bucket_id=127, augmentation_level=0.02)
            .repeat(FRAMES, 1),
            num_video_frames=FRAMES, image_only_indicator=torch.zeros(1, FRAMES))
        theirs = unet(sample, c_noise, encoder_hidden_states=context, added_time_ids=ids).sample
    error = max_error(ours, theirs.flatten(0, 1))
    print(f"UNet output: max |native - library| = {error:.2e} (of {theirs.abs().max():.2f})")
    assert error <= UNET_TOLERANCE


def test_denoiser_matches_the_library(native, library):
    from aid_model.sampling import VideoCondition, VideoDenoiser

    model = native[0].model
    noisy, concat, context = svd_inputs(library, 1)
    sigma = torch.tensor([7.5])
    with torch.no_grad():
        ours = model.apply_model(
            noisy.flatten(0, 1) * (sigma**2 + 1).sqrt(), sigma.repeat(FRAMES),
            c_concat=concat.flatten(0, 1), c_crossattn=context.repeat(FRAMES, 1, 1),
            y=model.encode_adm(fps=FRAMES, motion_bucket_id=127, augmentation_level=0.0)
            .repeat(FRAMES, 1),
            num_video_frames=FRAMES, image_only_indicator=torch.zeros(1, FRAMES))
        cond = VideoCondition(context, concat, torch.tensor([[FRAMES - 1.0, 127.0, 0.0]]))
        theirs = VideoDenoiser(library[0].unet)(noisy * (sigma**2 + 1).sqrt(), sigma, cond)
    error = max_error(ours, theirs.flatten(0, 1))
    print(f"denoiser (sigma 7.5): max |native - library| = {error:.2e}")
    assert error <= UNET_TOLERANCE


def test_apply_aid_gives_the_library_aid_unet_output(native, library):
    """Apply AID on the native demo UNet computes what the library's AID on the same weights
    computes, whichever UNet levels have attention (the hooks and weight patches are placed
    by name: a level of res blocks only shifts every later block's index)."""
    import comfy.model_management

    from aid_model.aid import attach_aid_from_file
    from aid_model.demo.paths import AID_FILE
    from aid_model.sampling import VideoCondition, VideoDenoiser
    from aid_model.svd import load_svd

    aid = attach_aid_from_file(load_svd(DEMO_DIR / "svd"), DEMO_DIR / AID_FILE)
    (clone,) = node("AIDApply").apply(native[0], AID_FILE, 1.0)
    noisy, concat, context = svd_inputs(library, 2)
    generator = torch.Generator().manual_seed(3)
    mcondition = torch.randn(1, FRAMES, aid.config.mcondition_tokens, context.shape[-1],
                             generator=generator)
    sample = torch.cat([noisy, concat], dim=2)
    c_noise = torch.tensor([0.25 * torch.log(torch.tensor(3.0)).item()])
    ids = torch.tensor([[FRAMES - 1.0, 127.0, 0.02]])
    comfy.model_management.load_models_gpu([clone, *clone.get_additional_models()])

    def native_unet(with_mcondition: bool) -> torch.Tensor:
        kwargs = {"aid_mcondition": mcondition[0]} if with_mcondition else {}
        return clone.model.diffusion_model(
            sample.flatten(0, 1), c_noise.repeat(FRAMES), context=context.repeat(FRAMES, 1, 1),
            y=clone.model.encode_adm(fps=FRAMES, motion_bucket_id=127, augmentation_level=0.02)
            .repeat(FRAMES, 1),
            num_video_frames=FRAMES, image_only_indicator=torch.zeros(1, FRAMES),
            transformer_options={"wrappers": clone.wrappers}, **kwargs)

    with torch.no_grad():
        ours, without = native_unet(True), native_unet(False)
        cond = VideoCondition(context, concat, ids, mcondition)
        theirs = VideoDenoiser(aid.unet).network(sample, c_noise, cond)
    error = max_error(ours, theirs.flatten(0, 1))
    effect = max_error(ours, without)
    print(f"AID UNet output: max |native - library| = {error:.2e}, "
          f"MCondition's effect {effect:.2e}")
    assert error <= UNET_TOLERANCE
    assert effect > 100 * UNET_TOLERANCE  # the hooks ran: the MCondition reached the output


def test_vae_encodes_and_decodes_as_the_library(native, library, scene_frames):
    vae = native[2]
    library_vae = library[0].vae
    with torch.no_grad():
        ours = vae.encode(scene_frames)
        theirs = library_vae.encode(scene_frames.movedim(-1, 1) * 2 - 1).latent_dist.mode()
        encode_error = max_error(ours, theirs)
        latents = theirs + 0.1 * torch.randn(theirs.shape, generator=torch.Generator()
                                             .manual_seed(2))
        decoded = vae.decode(latents)
        reference = library_vae.decode(latents, num_frames=FRAMES).sample
        reference = ((reference + 1) / 2).clamp(0, 1).movedim(1, -1)
    decode_error = max_error(decoded, reference)
    print(f"VAE: encode max error {encode_error:.2e}, decode max error {decode_error:.2e}")
    assert ours.shape == (FRAMES, *latent_shape(library))
    assert encode_error <= VAE_TOLERANCE
    assert decode_error <= VAE_TOLERANCE


def test_clip_vision_embeds_as_the_library(native, library, scene_frames):
    from aid_model.conditioning import clip_image_embedding

    image = scene_frames[:2]
    ours = native[1].encode_image(image).image_embeds
    theirs = clip_image_embedding(library[0].image_encoder, image.movedim(-1, 1) * 2 - 1)[:, 0]
    error = max_error(ours, theirs)
    print(f"CLIP vision image_embeds: max error {error:.2e}")
    assert error <= CLIP_TOLERANCE


@pytest.mark.parametrize("text", ["move the green circle left", ""])
def test_clip_text_gives_the_library_penultimate_layer(native, library, text):
    """ComfyUI's CLIP with SD 2.x's reading (penultimate block, final LayerNorm, pad 0) gives
    what the library's text encoder gives AID (``TextEncoder.encode``)."""
    clip = native[3]
    encoder = library[1]
    tokens = clip.tokenize(text)
    assert [token for token, _ in tokens["h"][0]] == encoder.tokenize([text])[0].tolist()
    ours = clip.encode_from_tokens(tokens)
    theirs = encoder.encode([text])
    error = max_error(ours, theirs)
    print(f"CLIP text {text!r}: max error {error:.2e}")
    assert error <= CLIP_TOLERANCE


@pytest.mark.parametrize("text", ["move the green circle left", ""])
def test_aid_conditioning_reads_the_demo_text_with_the_demo_tokenizer(native, library, text):
    """The text AID Conditioning encodes (``encode_texts``: open_clip's rules over the CLIP's
    own BPE files) is the library's e_t for the demo, not ids of another vocabulary."""
    patch = sys.modules[f"{PACKAGE_NAME}.nodes.native_patch"]
    ours = patch.encode_texts(native[3], [text])
    theirs = library[1].encode([text])
    error = max_error(ours, theirs)
    print(f"AID Conditioning text {text!r}: max error {error:.2e}")
    assert error <= CLIP_TOLERANCE


@pytest.mark.parametrize("direction", ["left", "right", "up", "down"])
@torch.inference_mode()  # as ComfyUI's executor runs nodes
def test_the_native_demo_follows_its_instructions(native, direction):
    """The demo workflow's chain (Apply AID, AID Conditioning, AID Guider, core sampling and
    decode) moves the named object as told in the held-out scene where the library's demo
    does in all four directions; a conditioning read wrongly (another tokenizer, a lost
    MCondition) moves it at chance."""
    from aid_model.synthetic.accuracy import direction_accuracy

    model, clip_vision, vae, clip = native
    (aid,) = node("AIDApply").apply(model, "aid.safetensors", 1.0)
    image, instruction, states = node("AIDDemoScene").draw(SCENE_SEED, direction)
    positive, frame_only, negative, latent = node("AIDConditioning").encode(
        aid, clip_vision, vae, clip, image, instruction, 64, 64, FRAMES, 127, FRAMES, 0.02,
        states=states)
    (guider,) = node("AIDGuider").get_guider(aid, positive, frame_only, negative, 2.0, 3.5)
    (sampler,) = core("KSamplerSelect").get_sampler("euler")
    (sigmas,) = core("KarrasScheduler").get_sigmas(20, 700.0, 0.002, 7.0)
    (noise,) = core("RandomNoise").get_noise(0)
    samples = core("SamplerCustomAdvanced").sample(noise, guider, sampler, sigmas, latent)[0]
    (frames,) = core("VAEDecode").decode(vae, samples)
    assert direction_accuracy(image[0].numpy(), frames[-1].float().numpy(), instruction), \
        instruction


def test_plain_svd_samples_with_core_nodes(native, library):
    model, clip_vision, vae, _ = native
    image, _, _ = node("AIDDemoScene").draw(SCENE_SEED, "random")
    positive, negative, _ = core("SVD_img2vid_Conditioning").encode(
        clip_vision, image, vae, 64, 64, FRAMES, 127, FRAMES, 0.0)
    # Core's empty latent is sized for SVD's ×8 VAE (height // 8) whatever the VAE; the
    # miniature's may downsample less, so the latent takes the frame's latent size (ComfyUI
    # would otherwise shrink the concat latent to the empty one and sample smaller frames).
    concat = positive[0][1]["concat_latent_image"]
    latent = {"samples": torch.zeros(FRAMES, *concat.shape[1:])}
    (samples,) = core("KSampler").sample(model, 0, 4, 2.0, "euler", "karras", positive,
                                         negative, latent)
    (frames,) = core("VAEDecode").decode(vae, samples)
    assert samples["samples"].shape == (FRAMES, *latent_shape(library))
    assert frames.shape == (FRAMES, 64, 64, 3)
    assert torch.isfinite(frames).all() and frames.min() >= 0 and frames.max() <= 1


def test_demo_scene_is_the_same_for_the_same_seed():
    scene = node("AIDDemoScene")
    image, instruction, states = scene.draw(SCENE_SEED, "random")
    again, instruction_again, _ = scene.draw(SCENE_SEED, "random")
    other, _, _ = scene.draw(SCENE_SEED + 1, "random")
    assert image.shape == (1, 64, 64, 3) and image.dtype == torch.float32
    assert image.min() >= 0 and image.max() <= 1
    assert torch.equal(image, again) and instruction == instruction_again
    assert not torch.equal(image, other)
    assert re.fullmatch(r"move the \w+ \w+ (left|right|up|down)", instruction)
    assert len(states.splitlines()) == 4
    name = instruction.split()[2:4]  # the target object: "move the <colour> <shape> …"
    assert all(" ".join(name) in state for state in states.splitlines()), states
    _, left, _ = scene.draw(SCENE_SEED, "left")
    assert left == re.sub(r"\w+$", "left", instruction)


def prompt_with_demo_model() -> dict:
    return {
        "1": {"class_type": "AIDDemoModel", "inputs": {"weight_dtype": "fp32"}},
        "2": {"class_type": "AIDDemoScene", "inputs": {"seed": SCENE_SEED, "direction": "up"}},
        "3": {"class_type": "SVD_img2vid_Conditioning", "inputs": {
            "clip_vision": ["1", 1], "init_image": ["2", 0], "vae": ["1", 2], "width": 64,
            "height": 64, "video_frames": FRAMES, "motion_bucket_id": 127, "fps": FRAMES,
            "augmentation_level": 0.0}},
        "4": {"class_type": "KSampler", "inputs": {
            "model": ["1", 0], "seed": 0, "steps": 4, "cfg": 2.0, "sampler_name": "euler",
            "scheduler": "karras", "positive": ["3", 0], "negative": ["3", 1],
            "latent_image": ["3", 2], "denoise": 1.0}},
        "5": {"class_type": "VAEDecode", "inputs": {"samples": ["4", 0], "vae": ["1", 2]}},
        "6": {"class_type": "PreviewImage", "inputs": {"images": ["5", 0]}},
    }


def validate(prompt: dict):
    import execution

    package = load_package()
    for name in ("AIDDemoModel", "AIDDemoScene"):
        comfy_nodes.NODE_CLASS_MAPPINGS[name] = package.NODE_CLASS_MAPPINGS[name]
    return asyncio.run(execution.validate_prompt("test", prompt, None))


def test_a_prompt_with_the_demo_model_validates():
    valid, error, _, node_errors = validate(prompt_with_demo_model())
    assert valid is True, (error, node_errors)


def test_missing_demo_folder_is_named_when_queued_and_when_run(monkeypatch, tmp_path):
    missing = tmp_path / "demo_model"
    monkeypatch.setattr(demo_module(), "DEMO_FOLDER", missing)
    valid, _, _, node_errors = validate(prompt_with_demo_model())
    assert valid is False
    details = [e["details"] for e in node_errors["1"]["errors"]]
    assert len(details) == 1 and str(missing) in details[0]
    assert "make demo-train" in details[0] and "\n" not in details[0]
    with pytest.raises(FileNotFoundError, match=re.escape(str(missing))):
        node("AIDDemoModel").load("fp32")


def test_the_demo_aid_weights_are_listed_in_the_aid_folder():
    services = sys.modules[f"{load_package().__name__}.nodes.comfy_services"]
    names = services.list_weight_files("aid")
    assert "aid.safetensors" in names
    assert not [name for name in names if name.startswith(("svd/", "text_encoder/"))]
    assert services.resolve_model_path(("aid",), "aid.safetensors") == DEMO_DIR / "aid.safetensors"

"""AID's dual CFG (paper eq. 8) in a real ComfyUI: core DualCFGGuider and the AID Guider
against the library's ``DualCFG`` on the same per-branch outputs, and the AID Guider through
core SamplerCustomAdvanced on the tiny SVD of fixture A.

The per-branch outputs D(∅,∅), D(c_f,∅), D(c_f,c_t) are known: a ComfyUI model function
wrapper (``model_options["model_function_wrapper"]``, which ``calc_cond_batch`` calls instead
of the UNet) returns a fixed random field for each conditioning, told apart by the value of
its CLIP embedding, and records which conditionings each call evaluated. Everything else
(the guiders, ``calc_cond_batch``, ``cfg_function``, the sampler) is ComfyUI's own code.
"""

from __future__ import annotations

import json

import pytest
import torch
from comfyui_host import import_comfyui
from safetensors.torch import load_file

comfy_nodes = import_comfyui()

import comfy.model_patcher  # noqa: E402 (ComfyUI is importable only after import_comfyui)
import comfy.samplers  # noqa: E402
import comfy.supported_models  # noqa: E402
import comfy.utils  # noqa: E402
from test_nodes_support import REPO_ROOT, load_package  # noqa: E402

from aid_model.sampling.condition import VideoCondition  # noqa: E402
from aid_model.sampling.dual_guidance import DualCFG, GuidanceSettings  # noqa: E402

FIXTURE = REPO_ROOT / "tests" / "fixtures" / "svd-parity-A"
FRAMES, LATENT_SIZE, CONTEXT = 6, 8, 64  # fixture A: T, latent h = w, CLIP width
# The branches, in eq. 8's order, by the value filling their stand-in CLIP embedding.
NULL, FRAME_ONLY, FULL = 0, 1, 2

package = load_package()
AIDGuider = package.NODE_CLASS_MAPPINGS["AIDGuider"]
InputError = __import__(f"{package.__name__}.nodes.errors", fromlist=["InputError"]).InputError
CORE = comfy_nodes.NODE_CLASS_MAPPINGS


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # The goldens were computed on one thread; on two, float sums come out in another order.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def svd():
    """Fixture A's tiny SVD as ComfyUI's own ``SVD_img2vid`` in a ``ModelPatcher`` (too small
    for ComfyUI's checkpoint detection, whose 64-channel heads it lacks: built explicitly)."""
    config = json.loads((FIXTURE / "config.json").read_text())["unet"]["comfyui_unet_config"]
    unet_config = {**config, "attn_precision": torch.float32}
    model_config = comfy.supported_models.SVD_img2vid(unet_config)
    model_config.unet_config.update(unet_config)  # its 16-channel heads over SVD's 64
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({}, device=torch.device("cpu"))
    state = comfy.utils.load_torch_file(str(FIXTURE / "svd_tiny_sgm.safetensors"))
    model.load_model_weights({k: v.float() for k, v in state.items()}, "model.diffusion_model.")
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


@pytest.fixture(scope="module")
def golden():
    return load_file(str(FIXTURE / "golden.safetensors"))


def conditioning(embedding: torch.Tensor, concat: torch.Tensor, augmentation: float = 0.0):
    """A CONDITIONING as SVD_img2vid_Conditioning makes it: (1, 1, d) CLIP embedding and the
    (1, 4, h, w) unscaled VAE latent of the frame."""
    return [[embedding.reshape(1, 1, -1), {"motion_bucket_id": 127, "fps": 6,
                                           "augmentation_level": augmentation,
                                           "concat_latent_image": concat}]]


def stand_in(branch: int):
    """A CONDITIONING whose CLIP embedding is filled with ``branch``: the recorder below
    tells the branches apart by it."""
    return conditioning(torch.full((CONTEXT,), float(branch)),
                        torch.zeros(1, 4, LATENT_SIZE, LATENT_SIZE))


class Recorder:
    """ComfyUI model function wrapper: records, per UNet call, σ and the branches evaluated;
    with ``fields`` ({branch: (T, 4, h, w)}) it returns them as the denoised outputs instead
    of running the UNet."""

    def __init__(self, fields: dict[int, torch.Tensor] | None = None):
        self.fields = fields
        self.calls: list[tuple[float, list[int]]] = []

    def __call__(self, apply_model, args):
        chunks = len(args["cond_or_uncond"])
        frames = args["input"].shape[0] // chunks
        context = args["c"]["c_crossattn"]
        branches = [round(float(context[i * frames, 0, 0])) for i in range(chunks)]
        self.calls.append((float(args["timestep"][0]), branches))
        if self.fields is None:
            return apply_model(args["input"], args["timestep"], **args["c"])
        return torch.cat([self.fields[branch] for branch in branches])

    def evaluated(self) -> list[int]:
        """Branches evaluated per σ, in call order (calls at one σ summed)."""
        counts: dict[float, int] = {}
        for sigma, branches in self.calls:
            counts[sigma] = counts.get(sigma, 0) + len(branches)
        return list(counts.values())


def known_fields(seed: int = 0) -> dict[int, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {branch: torch.randn(FRAMES, 4, LATENT_SIZE, LATENT_SIZE, generator=generator)
            for branch in (NULL, FRAME_ONLY, FULL)}


def with_recorder(svd, recorder: Recorder):
    model = svd.clone()
    model.set_model_unet_function_wrapper(recorder)
    return model


def probe(guider, sigmas: list[float], seed: int = 0) -> list[torch.Tensor]:
    """The guider's denoised output (T, 4, h, w) at each σ, through ``guider.sample`` with a
    sampler that evaluates the model once per σ at the noised start state."""
    outputs = []

    def evaluate(model, x, sigmas, extra_args=None, callback=None, disable=None):
        ones = x.new_ones([x.shape[0]])
        for sigma in sigmas:
            outputs.append(model(x, sigma * ones, **extra_args))
        return x

    noise = torch.randn(FRAMES, 4, LATENT_SIZE, LATENT_SIZE,
                        generator=torch.Generator().manual_seed(seed))
    guider.sample(noise, torch.zeros_like(noise), comfy.samplers.KSAMPLER(evaluate),
                  torch.tensor(sigmas), seed=seed)
    return outputs


def library(fields, settings: GuidanceSettings, sigmas: list[float]):
    """(outputs, branches evaluated per σ) of the library's ``DualCFG`` on the same
    per-branch outputs, for x of the library's layout (1, T, C, h, w)."""
    evaluated = []

    def denoiser(x, sigma, cond):
        branches = [round(float(value)) for value in cond.image_embeddings[:, 0, 0]]
        evaluated.append(len(branches))
        return torch.stack([fields[branch] for branch in branches])

    def branch(value):
        return VideoCondition(torch.full((1, 1, 1), float(value)), torch.zeros(1, 1, 1, 1, 1),
                              torch.zeros(1, 3))

    guided = DualCFG(denoiser, branch(NULL), branch(FRAME_ONLY), branch(FULL), settings)
    x = torch.zeros(1, FRAMES, 4, LATENT_SIZE, LATENT_SIZE)  # D here does not read x
    return [guided(x, torch.tensor([sigma]))[0] for sigma in sigmas], evaluated


def core_dual_cfg(model, text_scale: float, frame_scale: float):
    """Core DualCFGGuider, regular, with eq. 8's conditions in their roles."""
    return CORE["DualCFGGuider"]().get_guider(
        model, cond1=stand_in(FULL), cond2=stand_in(FRAME_ONLY), negative=stand_in(NULL),
        cfg_conds=text_scale, cfg_cond2_negative=frame_scale, style="regular")[0]


def aid_guider(model, frame_scale: float, text_scale: float, **advanced):
    return AIDGuider().get_guider(model, stand_in(FULL), stand_in(FRAME_ONLY), stand_in(NULL),
                                  frame_scale, text_scale, **advanced)[0]


def assert_matches(actual: list[torch.Tensor], expected: list[torch.Tensor]) -> None:
    # Eq. 8 as core nests it against the library's weighted sum: float rounding only.
    for got, want in zip(actual, expected, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# --- 1. core DualCFGGuider (regular) is eq. 8 ------------------------------------------------


@pytest.mark.parametrize(("frame_scale", "text_scale", "evaluated"), [
    (1.5, 7.5, 3),  # the general case
    (2.5, 0.0, 3),  # s_t = 0: plain CFG, but core still evaluates the positive branch
    (1.0, 7.5, 2),  # cfg_cond2_negative = 1: core drops the negative (its weight 1 − s_f is 0)
    (1.0, 1.0, 1),  # both 1: core drops the middle too: the positive alone
    (0.0, 0.0, 3),  # the unconditional model alone, all three evaluated
])
def test_core_dual_cfg_regular_is_equation_8(svd, frame_scale, text_scale, evaluated) -> None:
    fields = known_fields()
    recorder = Recorder(fields)
    sigmas = [2.0, 0.5]
    outputs = probe(core_dual_cfg(with_recorder(svd, recorder), text_scale, frame_scale), sigmas)
    expected, _ = library(fields, GuidanceSettings(frame_scale, text_scale), sigmas)
    assert_matches(outputs, expected)
    assert recorder.evaluated() == [evaluated] * len(sigmas)
    if evaluated == 2:
        assert {tuple(b) for _, b in recorder.calls} == {(FULL, FRAME_ONLY)}


# --- 2. the AID Guider against the library ------------------------------------------------------


@pytest.mark.parametrize(("frame_scale", "text_scale", "first", "evaluated"), [
    (1.5, 7.5, None, 3),  # (a) constant s_f
    (2.5, 3.0, 1.0, 3),  # (b) SVD's ramp of s_f, 1.0 on frame 0 → 2.5 on the last
    (3.0, 0.0, 1.0, 2),  # (d) s_t = 0 with the ramp: SVD's own guidance, two branches
    (2.5, 0.0, None, 2),  # (d) s_t = 0: two branches
    (1.0, 1.0, None, 1),  # (d) s_f = s_t = 1: the positive branch alone
    (2.0, 2.0, None, 2),  # s_f = s_t: the frame-only branch's weight is 0 (core runs it)
    (1.0, 4.0, None, 2),  # s_f = 1: no negative branch, as core
])
def test_aid_guider_is_the_library_dual_cfg(svd, frame_scale, text_scale, first,
                                            evaluated) -> None:
    fields = known_fields(1)
    recorder = Recorder(fields)
    sigmas = [700.0, 2.0, 0.002]
    advanced = {} if first is None else {"frame_scale_first": first}
    outputs = probe(aid_guider(with_recorder(svd, recorder), frame_scale, text_scale,
                               **advanced), sigmas)
    settings = GuidanceSettings(frame_scale, text_scale, frame_scale_first=first)
    expected, library_evaluated = library(fields, settings, sigmas)
    assert_matches(outputs, expected)
    assert recorder.evaluated() == library_evaluated == [evaluated] * len(sigmas)
    if text_scale == 0:
        # Two branches ∅ and c_f: the library's plain CFG form, hence the same bits.
        assert all(torch.equal(a, b) for a, b in zip(outputs, expected, strict=True))
    if evaluated == 1:
        assert all(torch.equal(output, fields[FULL]) for output in outputs)


def test_the_ramp_runs_from_frame_0_as_core_video_linear_cfg_guidance(svd) -> None:
    """Core DualCFGGuider on a model patched by Video Linear CFG Guidance (min_cfg = s_f on
    frame 0) ramps s_f the same way (in the ε form: equal to rounding)."""
    fields = known_fields(2)
    sigmas = [2.0, 0.5]
    ours = probe(aid_guider(with_recorder(svd, Recorder(fields)), 2.5, 3.0,
                            frame_scale_first=1.0), sigmas)
    patched = CORE["VideoLinearCFGGuidance"]().patch(with_recorder(svd, Recorder(fields)),
                                                     min_cfg=1.0)[0]
    core = probe(core_dual_cfg(patched, text_scale=3.0, frame_scale=2.5), sigmas)
    assert_matches(ours, core)
    unramped = probe(aid_guider(with_recorder(svd, Recorder(fields)), 2.5, 3.0), sigmas)
    assert (ours[0][0] - unramped[0][0]).abs().max() > 0.1  # frame 0: s_f 1.0, not 2.5
    torch.testing.assert_close(ours[0][-1], unramped[0][-1], rtol=1e-5, atol=1e-5)


def test_outside_the_sigma_window_only_the_positive_branch_runs(svd) -> None:
    """(c) σ inside [sigma_min, sigma_max]: eq. 8 with three branches; outside: D(c_f, c_t)
    alone, one branch evaluated."""
    fields = known_fields(3)
    recorder = Recorder(fields)
    sigmas = [700.0, 10.0, 2.0, 0.5, 0.002]
    outputs = probe(aid_guider(with_recorder(svd, recorder), 1.5, 7.5, frame_scale_first=1.0,
                               sigma_min=0.5, sigma_max=10.0), sigmas)
    settings = GuidanceSettings(1.5, 7.5, frame_scale_first=1.0, interval=(0.5, 10.0))
    expected, library_evaluated = library(fields, settings, sigmas)
    assert recorder.evaluated() == library_evaluated == [1, 3, 3, 3, 1]
    assert [b for _, b in recorder.calls if len(b) == 1] == [[FULL], [FULL]]
    assert torch.equal(outputs[0], fields[FULL]) and torch.equal(outputs[-1], fields[FULL])
    assert_matches(outputs, expected)


@pytest.mark.parametrize(("frame_scale", "text_scale"), [(1.5, 7.5), (2.5, 0.0), (1.0, 1.0),
                                                         (1.0, 3.0)])
def test_without_ramp_and_window_the_aid_guider_is_core_dual_cfg_bit_for_bit(
        svd, frame_scale, text_scale) -> None:
    fields = known_fields(4)
    sigmas = [700.0, 2.0]
    ours = probe(aid_guider(with_recorder(svd, Recorder(fields)), frame_scale, text_scale),
                 sigmas)
    core = probe(core_dual_cfg(with_recorder(svd, Recorder(fields)), text_scale, frame_scale),
                 sigmas)
    assert all(torch.equal(a, b) for a, b in zip(ours, core, strict=True))


def test_the_node_defaults_are_the_library_defaults() -> None:
    from aid_model.pipeline.options import PredictionOptions

    options = PredictionOptions()
    inputs = AIDGuider.INPUT_TYPES()
    required, optional = inputs["required"], inputs["optional"]
    assert required["frame_scale"][1]["default"] == options.frame_scale
    assert required["text_scale"][1]["default"] == options.text_scale
    assert options.frame_scale_first is None and optional["frame_scale_first"][1]["default"] < 0
    assert options.guidance_interval is None
    assert optional["sigma_min"][1]["default"] == 0.0
    assert optional["sigma_max"][1]["default"] >= 700.0  # above SVD's largest σ
    assert all(spec[1].get("advanced") for spec in optional.values())


def test_bad_inputs_name_the_input(svd) -> None:
    with pytest.raises(InputError, match=r"^input 'sigma_min' = 5\.0: .*sigma_max \(1\.0\)"):
        aid_guider(svd, 1.5, 7.5, sigma_min=5.0, sigma_max=1.0)
    patched = CORE["VideoLinearCFGGuidance"]().patch(svd, min_cfg=1.0)[0]
    with pytest.raises(InputError, match=r"^input 'frame_scale_first' = 1\.0: .*Video Linear"):
        aid_guider(patched, 2.5, 7.5, frame_scale_first=1.0)
    aid_guider(patched, 2.5, 7.5)  # without our ramp the patch ramps s_f, as with core's


# --- 3. through core sampling ------------------------------------------------------------------


class GivenNoise:
    """A NOISE (as RandomNoise gives) holding the fixture's noise."""

    def __init__(self, noise: torch.Tensor):
        self.noise, self.seed = noise, 0

    def generate_noise(self, latent):
        return self.noise.clone()


def sample(guider, golden) -> torch.Tensor:
    """SamplerCustomAdvanced with KSamplerSelect euler on the fixture's 4-step Karras sigmas."""
    sampler = CORE["KSamplerSelect"]().get_sampler("euler")[0]
    latent = {"samples": torch.zeros(FRAMES, 4, LATENT_SIZE, LATENT_SIZE)}
    output, _ = CORE["SamplerCustomAdvanced"]().sample(
        GivenNoise(golden["c_noise"]), guider, sampler, golden["c_sigmas"], latent)
    return output["samples"]


def real_conditionings(golden):
    """(frame + text, frame only, neither) on the tiny SVD: the fixture's SVD conditioning,
    with the other CLIP embedding of the fixture standing in for the text's effect."""
    frame_only = conditioning(golden["c_cond_crossattn"], golden["c_cond_concat"], 0.02)
    negative = conditioning(golden["c_uncond_crossattn"], golden["c_uncond_concat"], 0.02)
    positive = conditioning(golden["e_image_embeds"][1], golden["c_cond_concat"], 0.02)
    return positive, frame_only, negative


def test_through_sampler_custom_advanced(svd, golden) -> None:
    positive, frame_only, negative = real_conditionings(golden)
    node = AIDGuider()

    # s_t = 0: plain SVD guidance, the fixture's CFG 2.5 run (ComfyUI's own sampling).
    recorder = Recorder()
    plain = sample(node.get_guider(with_recorder(svd, recorder), positive, frame_only, negative,
                                   frame_scale=2.5, text_scale=0.0)[0], golden)
    torch.testing.assert_close(plain, golden["c_final_latent"], rtol=1e-4, atol=1e-4)
    assert recorder.evaluated() == [2, 2, 2, 2]

    # The defaults: core DualCFGGuider regular, to the bit.
    defaults = {name: spec[1]["default"]
                for name, spec in AIDGuider.INPUT_TYPES()["required"].items()
                if name in ("frame_scale", "text_scale")}
    ours = sample(node.get_guider(svd, positive, frame_only, negative, **defaults)[0], golden)
    core = sample(CORE["DualCFGGuider"]().get_guider(
        svd, positive, frame_only, negative, cfg_conds=defaults["text_scale"],
        cfg_cond2_negative=defaults["frame_scale"], style="regular")[0], golden)
    assert torch.equal(ours, core)
    assert not torch.allclose(ours, plain, atol=1e-3)

    # Ramp and σ window: guided at σ 70.5 and 2.27 only (σ 700 and 0.002 lie outside).
    recorder = Recorder()
    windowed = sample(node.get_guider(
        with_recorder(svd, recorder), positive, frame_only, negative, frame_scale=2.5,
        text_scale=3.0, frame_scale_first=1.0, sigma_min=1.0, sigma_max=100.0)[0], golden)
    assert recorder.evaluated() == [1, 3, 3, 1]
    assert torch.isfinite(windowed).all() and not torch.allclose(windowed, ours, atol=1e-3)

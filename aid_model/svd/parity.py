"""Comparison of this project's SVD with golden tensors from an independent implementation.

The fixture folder (``tests/fixtures/svd-parity-A``) holds a random-weight original single-file
checkpoint, ``config.json`` (head counts) and ``golden.safetensors`` computed by ComfyUI's
own SVD classes; its ``golden.md`` documents every tensor. ``run_parity`` recomputes each
golden with ``load_svd`` and the project's denoiser and sampler and reports the errors;
the test suite asserts them and ``python -m aid_model parity`` prints them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import Tensor

from aid_model.sampling import (
    DualCFG,
    GuidanceSettings,
    VideoCondition,
    VideoDenoiser,
    karras_sigmas,
    noise_to_initial_state,
    sample_euler,
)
from aid_model.svd.load import load_svd

# Tolerances from the foundation issue (float32).
MODULE_TOLERANCE = 2e-5
STEP_TOLERANCE_RELATIVE = 1e-6  # of the largest magnitude the sampler states reach
FINAL_STATE_TOLERANCE = 1e-4


@dataclass(frozen=True)
class ParityResult:
    name: str
    max_abs_error: float
    tolerance: float
    reference_max: float  # largest |golden| entry, for scale

    @property
    def passed(self) -> bool:
        return self.max_abs_error <= self.tolerance


def _fixture_heads(fixture: Path) -> tuple[int, int]:
    config = json.loads((fixture / "config.json").read_text())
    unet_heads = config["unet"]["comfyui_unet_config"]["num_head_channels"]
    clip_heads = config["clip_vision"]["comfyui_json_config"]["num_attention_heads"]
    return unet_heads, clip_heads


def _result(name: str, ours: Tensor, golden: Tensor, tolerance: float) -> ParityResult:
    if tuple(ours.shape) != tuple(golden.shape):
        raise AssertionError(f"{name}: shape {tuple(ours.shape)} != golden {tuple(golden.shape)}")
    error = (ours.float() - golden.float()).abs().max().item()
    return ParityResult(name, error, tolerance, golden.abs().max().item())


def _videos(flat: Tensor, frames: int) -> Tensor:
    """(B·T, ...) in the fixture's (b t) layout → (B, T, ...)."""
    return flat.reshape(flat.shape[0] // frames, frames, *flat.shape[1:])


@torch.no_grad()
def run_parity(fixture: str | Path) -> list[ParityResult]:
    """Every comparison of the foundation issue, in float32 on CPU."""
    fixture = Path(fixture)
    config = json.loads((fixture / "config.json").read_text())
    frames = config["frames"]
    chunk = config["decode_chunk_for_d_dec_images_chunked"]
    unet_heads, clip_heads = _fixture_heads(fixture)
    model = load_svd(
        fixture / config["checkpoint"]["file"],
        unet_head_channels=unet_heads,
        clip_num_heads=clip_heads,
    )
    golden = load_file(str(fixture / "golden.safetensors"))
    results: list[ParityResult] = []

    # Micro-conditioning as documented in golden.md: (fps 6, motion 127, aug 0.02) and
    # (fps 10, motion 30, aug 0.5); fps enters as fps − 1.
    ids_video0 = torch.tensor([[5.0, 127.0, 0.02]])
    ids_video1 = torch.tensor([[9.0, 30.0, 0.5]])
    embedded = model.unet.add_time_proj(torch.cat([ids_video0, ids_video1]).flatten()).reshape(
        2, -1
    )
    results.append(_result("adm_y", embedded[:1], golden["adm_y"], MODULE_TOLERANCE))
    results.append(_result("adm_y_video1", embedded[1:], golden["adm_y_video1"], MODULE_TOLERANCE))

    for prefix, ids in (
        ("a", ids_video0),
        ("a2", torch.cat([ids_video0, ids_video1])),
        ("a3", ids_video0),
    ):
        sample = _videos(golden[f"{prefix}_x"], frames)
        batch = sample.shape[0]
        out = model.unet(
            sample,
            golden[f"{prefix}_timesteps"][::frames],
            encoder_hidden_states=golden[f"{prefix}_context"][::frames],
            added_time_ids=ids,
        ).sample
        results.append(
            _result(
                f"unet {prefix}_out",
                out.reshape(batch * frames, *out.shape[2:]),
                golden[f"{prefix}_out"],
                MODULE_TOLERANCE,
            )
        )

    denoiser = VideoDenoiser(model.unet)
    cond = VideoCondition(golden["b_c_crossattn"][:1], golden["b_c_concat"][None], ids_video0)
    for index, sigma in enumerate(golden["b_sigmas"].tolist()):
        denoised = denoiser(golden[f"b_x_{index}"][None], torch.tensor([sigma]), cond)[0]
        results.append(
            _result(
                f"denoiser b_denoised_{index} (sigma {sigma:g})",
                denoised,
                golden[f"b_denoised_{index}"],
                MODULE_TOLERANCE,
            )
        )

    images = golden["d_images"]
    posterior = model.vae.encode(images).latent_dist
    results.append(
        _result("vae encode d_enc_mean", posterior.mode(), golden["d_enc_mean"], MODULE_TOLERANCE)
    )
    results.append(
        _result(
            "vae encode d_enc_moments",
            posterior.parameters,
            golden["d_enc_moments"],
            MODULE_TOLERANCE,
        )
    )
    latents = golden["d_dec_latent"]
    whole = model.vae.decode(latents, num_frames=latents.shape[0]).sample
    results.append(
        _result("vae decode d_dec_images", whole, golden["d_dec_images"], MODULE_TOLERANCE)
    )
    chunked = torch.cat(
        [model.vae.decode(part, num_frames=part.shape[0]).sample for part in latents.split(chunk)]
    )
    results.append(
        _result(
            f"vae decode chunked by {chunk}",
            chunked,
            golden["d_dec_images_chunked"],
            MODULE_TOLERANCE,
        )
    )

    clip = model.image_encoder(pixel_values=golden["e_pixel_values"], output_hidden_states=True)
    results.append(
        _result("clip image_embeds", clip.image_embeds, golden["e_image_embeds"], MODULE_TOLERANCE)
    )
    results.append(
        _result(
            "clip last_hidden_state",
            clip.last_hidden_state,
            golden["e_last_hidden_state"],
            MODULE_TOLERANCE,
        )
    )
    results.append(
        _result(
            "clip penultimate hidden state",
            clip.hidden_states[-2],
            golden["e_penultimate_hidden_states"],
            MODULE_TOLERANCE,
        )
    )

    results.extend(_sampling_results(model, golden, frames))
    return results


def _sampling_results(model, golden: dict[str, Tensor], frames: int) -> list[ParityResult]:
    """The fixture's 4-step Euler run with plain CFG 2.5, through our sampler and denoiser,
    guided as ``AIDPipeline`` guides plain SVD: dual CFG with s_t = 0 (two branches)."""
    ids = torch.tensor([[5.0, 127.0, 0.02]])

    def expand(latent: Tensor) -> Tensor:
        return latent[:, None].expand(1, frames, *latent.shape[1:])

    cond = VideoCondition(golden["c_cond_crossattn"], expand(golden["c_cond_concat"]), ids)
    uncond = VideoCondition(golden["c_uncond_crossattn"], expand(golden["c_uncond_concat"]), ids)
    scale = golden["c_cfg_scale"].item()
    # Without AID the frame-only and the full condition are the same.
    settings = GuidanceSettings(frame_scale=scale, text_scale=0.0)
    guided = DualCFG(VideoDenoiser(model.unet), uncond, cond, cond, settings)
    sigmas = karras_sigmas(len(golden["c_sigmas"]) - 1)
    x = noise_to_initial_state(golden["c_noise"][None], sigmas[0])
    states: list[Tensor] = []
    denoised: list[Tensor] = []

    def record(info) -> None:
        states.append(info.x[0])
        denoised.append(info.denoised[0])

    final = sample_euler(guided, x, sigmas, callback=record)[0]
    state_scale = golden["c_step_x"].abs().max().item()
    results = [
        _result("karras sigmas (4 steps)", sigmas, golden["c_sigmas"], 0.0),
        _result(
            "initial state c_x_init",
            x[0],
            golden["c_x_init"],
            STEP_TOLERANCE_RELATIVE * state_scale,
        ),
    ]
    for step, (state, estimate) in enumerate(zip(states, denoised, strict=True)):
        results.append(
            _result(
                f"euler step {step} state",
                state,
                golden["c_step_x"][step],
                STEP_TOLERANCE_RELATIVE * state_scale,
            )
        )
        # A step's estimate inherits the state error of the steps before it, so it is held
        # to the final-state bound, not the single-call bound (the reference's own
        # 1-vs-2-thread difference on these is 2.3e-5).
        results.append(
            _result(
                f"euler step {step} denoised",
                estimate,
                golden["c_step_denoised"][step],
                FINAL_STATE_TOLERANCE,
            )
        )
    results.append(
        _result("euler final state c_final_x", final, golden["c_final_x"], FINAL_STATE_TOLERANCE)
    )
    latent = final / model.vae.config.scaling_factor
    results.append(
        _result(
            "final VAE latent c_final_latent",
            latent,
            golden["c_final_latent"],
            FINAL_STATE_TOLERANCE / model.vae.config.scaling_factor,
        )
    )
    images = model.vae.decode(latent, num_frames=frames).sample
    results.append(
        _result(
            "final images c_final_images", images, golden["c_final_images"], FINAL_STATE_TOLERANCE
        )
    )
    return results


def format_table(results: list[ParityResult]) -> str:
    """A Markdown table of the results."""
    lines = [
        "| tensor | max abs error | tolerance | max abs golden | ok |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        ok = "yes" if r.passed else "NO"
        lines.append(
            f"| {r.name} | {r.max_abs_error:.3g} | {r.tolerance:.3g} | "
            f"{r.reference_max:.4g} | {ok} |"
        )
    return "\n".join(lines)

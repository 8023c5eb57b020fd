"""``python -m lab.perf flops``: FLOPs of every sampling part and of a training
step, and a training step's memory (``training_memory``), at any size, on no hardware at
all.

The modules are built and run on fake tensors (``FakeTensorMode``: shapes only, no memory,
no arithmetic) under ``FlopCounterMode``, which counts matrix products, convolutions and
attention. That gives the svd_xt-shaped ratios (AID's dual CFG against SVD's CFG, the
adapters' and the MCondition attention's share of a UNet call) without a GPU, and the
FLOPs per step that "achieved TFLOP/s" divides by. FLOPs are not time: small kernels and
attention run at lower efficiency than large matrix products, so the timed tables stay the
reference; this one says what the design costs.
"""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch
from torch.utils.flop_counter import FlopCounterMode

from aid_model.aid import MConditionAttnProcessor, attach_aid
from aid_model.sampling import karras_sigmas
from aid_model.svd.single_token_attention import install_single_token_cross_attention
from lab.perf.fake import (
    aid_unet_output,
    dqformer_inputs,
    no_op_casts_skipped,
    unet_inputs,
)
from lab.perf.measure import table
from lab.perf.models import BenchConfig
from lab.perf.op_count import total_kernel_ops
from lab.perf.sampling import guided_steps
from lab.perf.training_memory import training_memory_table


def count_flops(run: Callable[[], object]) -> float:
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), counter:
        run()
    return float(counter.get_total_flops())


def _mcondition_projection_flops(unet: torch.nn.Module, rows: int, tokens: int) -> float:
    """FLOPs of all MCondition key/value projections for ``rows`` frames of ``tokens``."""
    total = 0.0
    for module in unet.modules():
        if isinstance(module, MConditionAttnProcessor):
            for linear in (module.to_k_mcondition, module.to_v_mcondition):
                total += 2.0 * rows * tokens * linear.in_features * linear.out_features
    return total


def run_flops(config: BenchConfig) -> str:
    """FLOP tables for one configuration (see the module docstring)."""
    from diffusers import AutoencoderKLTemporalDecoder, UNetSpatioTemporalConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    from aid_model.svd.build import restore_original_unet_norms

    frames, steps = config.frames, config.steps
    latent = config.latent_size
    width = config.unet["cross_attention_dim"]
    tokens = config.aid.mcondition_tokens
    with FakeTensorMode(), no_op_casts_skipped():
        unet = UNetSpatioTemporalConditionModel(**config.unet).eval()
        restore_original_unet_norms(unet)
        vae = AutoencoderKLTemporalDecoder(**config.vae).eval()
        clip = CLIPVisionModelWithProjection(CLIPVisionConfig(**config.image_encoder)).eval()

        # Every operation's FLOPs are per batch item, so a batch of b costs b batches of 1
        # (each branch of a guided step is one more item): counted once, at batch 1.
        plain_item = count_flops(lambda: unet(**unet_inputs(config)))  # diffusers' processors
        install_single_token_cross_attention(unet)  # as load_svd builds every SVD UNet
        base_item = count_flops(lambda: unet(**unet_inputs(config)))
        svd_inputs = unet_inputs(config)
        svd_ops = total_kernel_ops(lambda: unet(**svd_inputs))
        base = {b: b * base_item for b in (1, 2, 3)}
        decode = count_flops(lambda: [
            vae.decode(torch.randn(chunk, 4, *latent), num_frames=chunk)
            for chunk in _chunks(frames, config.decode_chunk)])
        encode = count_flops(lambda: vae.encode(
            torch.randn(1, 3, config.height, config.width)))
        image_size = config.image_encoder["image_size"]
        clip_flops = count_flops(lambda: clip(pixel_values=torch.randn(1, 3, image_size,
                                                                         image_size)))
        model = attach_aid(SimpleNamespace(unet=unet), config.aid)
        # Inference: FlopCounterMode's module tracker trips on fake parameters that
        # require gradients.
        model.eval().requires_grad_(False)
        adapters_item = count_flops(lambda: model.unet(**unet_inputs(config), mcondition=None))
        mcondition = torch.randn(1, frames, tokens, width)
        aid_item = count_flops(lambda: model.unet(**unet_inputs(config), mcondition=mcondition))
        adapters = {b: b * adapters_item for b in (1, 3)}
        aid = {b: b * aid_item for b in (1, 3)}
        dqformer = count_flops(lambda: model.build_mcondition(*dqformer_inputs(config)))
        kernels = {"SVD UNet": svd_ops, **_aid_kernel_ops_per_call(model, config)}
        projection_item = _mcondition_projection_flops(unet, frames, tokens)
        projections = 3 * projection_item

    # Training runs with gradients, i.e. without the one-token shortcut.
    training = _training_flops(config, plain_item)
    inside = guided_steps(steps, config.guidance_interval)
    low, high = config.guidance_interval
    guided = [low <= sigma <= high for sigma in karras_sigmas(steps)[:-1].tolist()]
    svd_clip = steps * base[2]
    plain_svd_clip = steps * 2 * plain_item
    dual_clip = steps * aid[3]
    interval_clip = sum(aid[3] if step_guided else aid[1] for step_guided in guided)
    per_clip = encode + clip_flops + decode

    def tf(value: float) -> str:
        return f"{value / 1e9:,.1f}"

    calls = table(
        f"UNet call FLOPs ({frames} frames, {config.height}x{config.width}, latents "
        f"{latent[0]}x{latent[1]})",
        ["call", "GFLOP", "× SVD UNet at the same batch"],
        [["SVD UNet, batch 1", tf(base[1]), "1.000×"],
         ["SVD UNet, batch 2 (CFG)", tf(base[2]), "1.000×"],
         ["SVD UNet, batch 3", tf(base[3]), "1.000×"],
         ["SVD UNet, batch 1, one-token cross-attention computed (diffusers)",
          tf(plain_item), f"{plain_item / base[1]:.3f}×"],
         ["AID UNet, batch 3, MCondition off (adapters only)", tf(adapters[3]),
          f"{adapters[3] / base[3]:.3f}×"],
         ["AID UNet, batch 3 (dual CFG)", tf(aid[3]), f"{aid[3] / base[3]:.3f}×"],
         ["  of which MCondition key/value projections", tf(projections),
          f"{projections / aid[3]:.1%} of the AID call"],
         ["AID UNet, batch 1 (outside the guidance interval)", tf(aid[1]),
          f"{aid[1] / base[1]:.3f}×"]])
    clips = table(
        f"Per clip ({steps} steps; guidance interval σ∈[{low:g}, {high:g}] guides {inside})",
        ["part", "GFLOP", "× SVD CFG sampling"],
        [["SVD CFG sampling (2 branches)", tf(svd_clip), "1.000×"],
         ["SVD CFG sampling without the one-token shortcut", tf(plain_svd_clip),
          f"{plain_svd_clip / svd_clip:.3f}×"],
         ["AID dual CFG sampling (3 branches)", tf(dual_clip), f"{dual_clip / svd_clip:.3f}×"],
         ["AID dual CFG with the interval", tf(interval_clip),
          f"{interval_clip / svd_clip:.3f}×"],
         ["DQFormer, full + null MCondition", tf(2 * dqformer),
          f"{2 * dqformer / svd_clip:.3%}"],
         ["VAE encode + CLIP image tower + VAE decode", tf(per_clip),
          f"{per_clip / svd_clip:.3%}"]])
    shares = (
        f"AID modules in a dual-CFG UNet call: adapters "
        f"{(adapters[3] - base[3]) / aid[3]:.2%}, MCondition attention "
        f"{(aid[3] - adapters[3]) / aid[3]:.2%} (key/value projections "
        f"{projections / aid[3]:.2%}). Against an SVD CFG without the one-token shortcut, "
        f"dual CFG is {dual_clip / plain_svd_clip:.3f}× and the interval "
        f"{interval_clip / plain_svd_clip:.3f}×."
    )
    launches = table(
        "Operations launched per UNet call (aten operations other than views; a proxy for "
        "kernel launches, which set the time where a call cannot fill the GPU)",
        ["call", "operations", "× SVD UNet"],
        [[label, f"{count:,}", f"{count / kernels['SVD UNet']:.3f}×"]
         for label, count in kernels.items()])
    forward, full_step, aid_step, trained, base_parameters = training
    train = table(
        "Training step at batch 1 (forward + backward; frozen weights get no weight "
        "gradient)",
        ["trained", "parameters", "GFLOP", "× forward", "× whole UNet"],
        [["whole UNet", f"{base_parameters:,}", tf(full_step), f"{full_step / forward:.2f}×",
          "1.000×"],
         ["AID trainable set (DQFormer included)", f"{trained:,} "
          f"({trained / base_parameters:.2%})", tf(aid_step), f"{aid_step / forward:.2f}×",
          f"{aid_step / full_step:.3f}×"]])
    return "\n\n".join([f"config {config.describe()}", calls, clips, shares, launches, train,
                        training_memory_table(config)])


def _aid_kernel_ops_per_call(model, config: BenchConfig) -> dict[str, int]:
    """Kernel-launching operations of one AID UNet call (any batch: the count does not
    depend on it): adapters only, and with MCondition. The inputs are made before
    counting, so only the call is counted."""
    inputs = unet_inputs(config)
    width = config.unet["cross_attention_dim"]
    mcondition = torch.randn(1, config.frames, config.aid.mcondition_tokens, width)
    return {
        "AID UNet, MCondition off (adapters only)":
            total_kernel_ops(lambda: model.unet(**inputs, mcondition=None)),
        "AID UNet": total_kernel_ops(lambda: model.unet(**inputs, mcondition=mcondition)),
    }


def _training_flops(config: BenchConfig, forward: float) -> tuple[float, ...]:
    """(forward, whole-UNet step, AID step) FLOPs at batch 1 (``forward``: the SVD UNet's
    forward at batch 1, counted already), AID's trained parameter count and the UNet's. The
    loss is a plain mean square: the network's cost is what counts."""
    from diffusers import UNetSpatioTemporalConditionModel
    from torch._subclasses.fake_tensor import FakeTensorMode

    from aid_model.aid import count_parameters

    def flops_with_grad(run: Callable[[], torch.Tensor]) -> float:
        counter = FlopCounterMode(display=False)
        with counter:
            run().float().pow(2).mean().backward()
        return float(counter.get_total_flops())

    with FakeTensorMode(), no_op_casts_skipped():
        unet = UNetSpatioTemporalConditionModel(**config.unet).train()
        full = flops_with_grad(lambda: unet(**unet_inputs(config))[0])
        model = attach_aid(SimpleNamespace(unet=unet), config.aid)  # freezes the base
        model.train()
        counts = count_parameters(model)

        aid = flops_with_grad(lambda: aid_unet_output(model, config))
    return forward, full, aid, counts.trainable, counts.base_unet


def _chunks(frames: int, chunk: int) -> list[int]:
    return [min(chunk, frames - start) for start in range(0, frames, chunk)]

"""EDM sampling for SVD-style video models: schedules, the v-prediction denoiser,
samplers over any denoiser callable, and guidance as denoiser wrappers."""

from aid_model.sampling.condition import VideoCondition
from aid_model.sampling.denoiser import VideoDenoiser
from aid_model.sampling.dual_guidance import DualCFG, GuidanceSettings
from aid_model.sampling.edm import karras_sigmas, noise_to_initial_state, v_prediction_scalings
from aid_model.sampling.samplers import (
    SAMPLERS,
    StepCallback,
    StepInfo,
    sample,
    sample_dpmpp_2m,
    sample_euler,
    sample_heun,
)

__all__ = [
    "SAMPLERS",
    "DualCFG",
    "GuidanceSettings",
    "StepCallback",
    "StepInfo",
    "VideoCondition",
    "VideoDenoiser",
    "karras_sigmas",
    "noise_to_initial_state",
    "sample",
    "sample_dpmpp_2m",
    "sample_euler",
    "sample_heun",
    "v_prediction_scalings",
]

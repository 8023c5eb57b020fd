"""AID Guider: AID's dual classifier-free guidance (paper eq. 8) as a ComfyUI GUIDER.

    D̃ = D(∅,∅) + s_f·(D(c_f,∅) − D(∅,∅)) + s_t·(D(c_f,c_t) − D(c_f,∅))

is core DualCFGGuider in its ``regular`` style with cond1 = positive (frame + text), cond2 =
frame_only, negative = neither, cfg_conds = s_t and cfg_cond2_negative = s_f (see
docs/comfyui.md, "Guidance"). This guider computes it the same way, through ComfyUI's own
``calc_cond_batch`` and ``cfg_function`` (so model patches act on it as on core's), and adds
what AID's library guidance (``aid_model.sampling.dual_guidance``) does beyond it:

- s_f ramped per frame from ``frame_scale_first`` to ``frame_scale`` (SVD's linear guidance;
  a ComfyUI SVD latent is (T, C, h, w): the batch axis holds the frames);
- a guidance interval σ_lo ≤ σ ≤ σ_hi, outside which only the positive branch runs;
- a branch whose weight is zero on every frame is not evaluated (s_t = 0: two branches,
  s_f = s_t = 1: one), where core evaluates all three unless s_f = 1.

With no ramp and the whole schedule guided it gives core DualCFGGuider's numbers bit for bit.
ComfyUI is imported on first use, so the extension loads without it.
"""

from __future__ import annotations

import functools

from .errors import InputError

CATEGORY = "AID/sampling"
# The σ window's widest setting: above every σ of SVD's schedule (700 → 0.002) and of the
# sigma nodes' usual ranges, so the default guides every step.
SIGMA_LIMIT = 10000.0
NO_RAMP = -1.0


def defaults() -> dict[str, float]:
    """The node's defaults, read from the library's ``PredictionOptions`` (the one place the
    library, the CLI and the nodes take their defaults from)."""
    from aid_model.pipeline.options import PredictionOptions

    options = PredictionOptions()
    interval = options.guidance_interval or (0.0, SIGMA_LIMIT)
    return {
        "frame_scale": options.frame_scale,
        "text_scale": options.text_scale,
        "frame_scale_first": (NO_RAMP if options.frame_scale_first is None
                              else options.frame_scale_first),
        "sigma_min": float(interval[0]),
        "sigma_max": float(interval[1]),
    }


@functools.cache
def guider_class() -> type:
    """``AIDDualCFGGuider``, a subclass of ComfyUI's ``comfy.samplers.CFGGuider`` (defined
    on first use: ComfyUI is importable only inside its own process)."""
    import comfy.samplers
    import node_helpers
    import torch

    from aid_model.sampling.dual_guidance import GuidanceSettings

    class AIDDualCFGGuider(comfy.samplers.CFGGuider):
        """Eq. 8 on conditions "negative" (∅,∅), "middle" (c_f,∅), "positive" (c_f,c_t)."""

        def set_conds(self, positive, middle, negative):
            # As core's Guider_DualCFG: the frame-only branch is the negative of the text
            # guidance, and model patches that look at prompt_type see it so.
            middle = node_helpers.conditioning_set_values(middle, {"prompt_type": "negative"})
            self.inner_set_conds({"positive": positive, "middle": middle, "negative": negative})

        def set_guidance(self, settings: GuidanceSettings):
            self.settings = settings

        def guided_at(self, sigma: torch.Tensor) -> bool:
            """Whether σ lies in the guidance interval (read on the host: it decides which
            branches run)."""
            if self.settings.interval is None:
                return True
            low, high = self.settings.interval
            return low <= float(sigma.reshape(-1)[0]) <= high

        # ComfyUI's signature (its samplers pass model_options on every call).
        def predict_noise(self, x, timestep, model_options={}, seed=None):  # noqa: B006
            """Guided denoised output for x (T, C, h, w) at σ = ``timestep`` (T,)."""
            positive = self.conds.get("positive", None)
            if not self.guided_at(timestep):
                return comfy.samplers.calc_cond_batch(
                    self.inner_model, [positive], x, timestep, model_options)[0]
            settings = self.settings
            num_frames = x.shape[0]
            conds = [self.conds.get("negative", None), self.conds.get("middle", None), positive]
            # As in core: a model patch that needs every branch sets this option.
            if not model_options.get("disable_cfg1_optimization", False):
                weights = settings.branch_weights(num_frames)  # (3, 1, T): ∅, c_f, c_f + c_t
                used = weights.ne(0).flatten(1).any(1).tolist()
                conds = [cond if needed else None for cond, needed in zip(conds, used, strict=True)]
            out = comfy.samplers.calc_cond_batch(self.inner_model, conds, x, timestep,
                                                 model_options)
            # A skipped branch comes back as zeros, and its weight is zero: the sum is eq. 8.
            frame_scale = settings.frame_scale
            if settings.frame_scale_first is not None:
                # Frame 0 gets frame_scale_first, the last frame frame_scale, as core's Video
                # Linear CFG Guidance and the library ramp it.
                frame_scale = torch.linspace(settings.frame_scale_first, settings.frame_scale,
                                             num_frames).reshape(num_frames, 1, 1, 1).to(x)
            frame_guided = comfy.samplers.cfg_function(
                self.inner_model, out[1], out[0], frame_scale, x, timestep,
                model_options=model_options, cond=conds[1], uncond=conds[0])
            return frame_guided + (out[2] - out[1]) * settings.text_scale

    return AIDDualCFGGuider


def make_guider(model, positive, frame_only, negative, frame_scale: float, text_scale: float,
                frame_scale_first: float, sigma_min: float, sigma_max: float):
    """The GUIDER for the node's inputs; raises InputError naming the input at fault."""
    from aid_model.sampling.dual_guidance import GuidanceSettings

    if sigma_min > sigma_max:
        raise InputError("sigma_min", sigma_min, (
            f"the guidance interval is empty: sigma_min must not exceed sigma_max "
            f"({sigma_max}); lower sigma_min, or set 0 and {SIGMA_LIMIT:g} to guide every step"))
    ramp = frame_scale_first >= 0
    if ramp and "sampler_cfg_function" in model.model_options:
        raise InputError("frame_scale_first", frame_scale_first, (
            "the model already carries a CFG function patch (e.g. Video Linear CFG Guidance), "
            "which takes one frame scale and ramps it itself; set frame_scale_first to -1 to "
            "use the patch's ramp, or connect the model without that patch"))
    whole_schedule = sigma_min <= 0.0 and sigma_max >= SIGMA_LIMIT
    settings = GuidanceSettings(
        frame_scale=frame_scale, text_scale=text_scale,
        frame_scale_first=frame_scale_first if ramp else None,
        interval=None if whole_schedule else (sigma_min, sigma_max))
    guider = guider_class()(model)
    guider.set_conds(positive, frame_only, negative)
    guider.set_guidance(settings)
    return guider


class AIDGuider:
    """AID Guider: MODEL + three CONDITIONINGs → GUIDER (AID's dual CFG, eq. 8)."""

    @classmethod
    def INPUT_TYPES(cls):
        default = defaults()
        scale = {"min": 0.0, "max": 100.0, "step": 0.05, "round": 0.01}
        return {
            "required": {
                "model": ("MODEL", {"tooltip": (
                    "The SVD image-to-video model, with AID applied (Apply AID) or plain.")}),
                "positive": ("CONDITIONING", {"tooltip": (
                    "Frame + text, c_f and c_t: AID Conditioning's first output.")}),
                "frame_only": ("CONDITIONING", {"tooltip": (
                    "Frame only, c_f without the instruction: AID Conditioning's second "
                    "output.")}),
                "negative": ("CONDITIONING", {"tooltip": (
                    "Neither frame nor text: AID Conditioning's third output (for plain SVD, "
                    "SVD_img2vid_Conditioning's negative).")}),
                "frame_scale": ("FLOAT", {"default": default["frame_scale"], **scale, "tooltip": (
                    "s_f, guidance towards the reference frames (eq. 8), on the last frame. "
                    "1 = none: the negative branch is not evaluated.")}),
                "text_scale": ("FLOAT", {"default": default["text_scale"], **scale, "tooltip": (
                    "s_t, guidance towards the instruction and states (eq. 8). 0 = plain SVD "
                    "guidance: the positive branch is not evaluated (2 UNet evaluations a "
                    "step instead of 3).")}),
            },
            "optional": {
                "frame_scale_first": ("FLOAT", {
                    "default": default["frame_scale_first"], "min": NO_RAMP, "max": 100.0,
                    "step": 0.05, "round": 0.01, "advanced": True, "tooltip": (
                        "s_f on frame 0, ramping linearly to frame_scale on the last frame "
                        "(SVD's linear guidance, as Video Linear CFG Guidance's min_cfg). "
                        "-1: no ramp, frame_scale on every frame.")}),
                "sigma_min": ("FLOAT", {
                    "default": default["sigma_min"], "min": 0.0, "max": SIGMA_LIMIT,
                    "step": 0.001, "round": False, "advanced": True, "tooltip": (
                        "Guidance interval, lower end in σ (the SIGMAS of the schedule: SVD "
                        "goes from 700 to 0.002). At a step with σ below it only the positive "
                        "branch runs: one UNet evaluation.")}),
                "sigma_max": ("FLOAT", {
                    "default": default["sigma_max"], "min": 0.0, "max": SIGMA_LIMIT,
                    "step": 0.001, "round": False, "advanced": True, "tooltip": (
                        "Guidance interval, upper end in σ. At a step with σ above it only "
                        f"the positive branch runs. {SIGMA_LIMIT:g} (with sigma_min 0) "
                        "guides every step.")}),
            },
        }

    RETURN_TYPES = ("GUIDER",)
    RETURN_NAMES = ("guider",)
    OUTPUT_TOOLTIPS = ("AID's dual CFG, for SamplerCustomAdvanced (with KSamplerSelect and any "
                       "sigmas node).",)
    FUNCTION = "get_guider"
    CATEGORY = CATEGORY
    DESCRIPTION = (
        "AID's dual classifier-free guidance (paper eq. 8): negative + s_f·(frame_only − "
        "negative) + s_t·(positive − frame_only), which is core DualCFGGuider (regular) with "
        "cfg_cond2_negative = s_f and cfg_conds = s_t. Adds SVD's per-frame ramp of s_f, a "
        "guidance interval in σ (outside it only the positive branch runs) and skips every "
        "branch whose weight is zero. Connect it to SamplerCustomAdvanced."
    )

    def get_guider(self, model, positive, frame_only, negative, frame_scale: float,
                   text_scale: float, frame_scale_first: float | None = None,
                   sigma_min: float | None = None, sigma_max: float | None = None):
        # An API prompt may leave the advanced inputs out: they take the node's defaults.
        default = defaults()
        return (make_guider(
            model, positive, frame_only, negative, frame_scale, text_scale,
            default["frame_scale_first"] if frame_scale_first is None else frame_scale_first,
            default["sigma_min"] if sigma_min is None else sigma_min,
            default["sigma_max"] if sigma_max is None else sigma_max),)

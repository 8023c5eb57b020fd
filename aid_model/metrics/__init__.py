"""Video-prediction metrics: FVD and KVD on I3D features, FID on Inception features.

    from aid_model.metrics import load_i3d, video_metrics
    i3d = load_i3d("models/i3d_torchscript.pt", "cuda")
    real = i3d.video_features(real_clips)          # (N, T, 3, H, W) in [−1, 1]
    fake = i3d.video_features(predicted_clips)     # reference frames included
    video_metrics(real, fake)                      # {"fvd": …, "kvd": …, "num_videos": …}

Modules: ``frechet`` (Fréchet distance, careful square-root trace), ``kernel`` (unbiased
polynomial-kernel MMD²), ``preprocess`` (aid-method §8), ``i3d`` / ``inception`` (the
user-supplied feature networks, validated), ``i3d_network`` (I3D for pytorch-i3d state
dicts), ``paired`` (exact McNemar test of two pass/fail records on the same items). See
docs/evaluation.md.
"""

from __future__ import annotations

from aid_model.lazy_exports import lazy_exports

_EXPORTS = {
    "feature_statistics": "aid_model.metrics.frechet",
    "frechet_distance": "aid_model.metrics.frechet",
    "frechet_distance_from_features": "aid_model.metrics.frechet",
    "kernel_distance": "aid_model.metrics.kernel",
    "polynomial_kernel": "aid_model.metrics.kernel",
    "i3d_preprocess": "aid_model.metrics.preprocess",
    "inception_preprocess": "aid_model.metrics.preprocess",
    "I3DFeatureExtractor": "aid_model.metrics.i3d",
    "load_i3d": "aid_model.metrics.i3d",
    "InceptionFeatureExtractor": "aid_model.metrics.inception",
    "load_inception": "aid_model.metrics.inception",
    "FeatureModelError": "aid_model.metrics.model_file",
    "InceptionI3d": "aid_model.metrics.i3d_network",
    "video_metrics": "aid_model.metrics.report",
    "PairedDifference": "aid_model.metrics.paired",
    "exact_mcnemar_p": "aid_model.metrics.paired",
    "paired_difference": "aid_model.metrics.paired",
}

__all__ = sorted(_EXPORTS)

__getattr__, __dir__ = lazy_exports("aid_model.metrics", _EXPORTS, globals())

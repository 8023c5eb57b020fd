"""The numbers an evaluation reports, from feature sets already extracted."""

from __future__ import annotations

from typing import Any

from aid_model.metrics.frechet import ArrayLike, as_float64, frechet_distance_from_features
from aid_model.metrics.kernel import kernel_distance


def video_metrics(
    real_features: ArrayLike,
    generated_features: ArrayLike,
    *,
    kvd_subset_size: int | None = None,
    kvd_num_subsets: int = 100,
    seed: int = 0,
) -> dict[str, Any]:
    """FVD and KVD between I3D features of real (N, D) and generated (M, D) clips.

    Returns {"fvd", "kvd", "num_real", "num_generated", "feature_dim", "kvd_subsets"}
    (``kvd_subsets`` None: KVD on the whole sets). Warns in the result (key "warnings")
    when a set has fewer samples than feature dimensions: the covariance is then
    singular and FVD biased upward; compare only numbers from equal sample counts.
    """
    real, generated = as_float64(real_features), as_float64(generated_features)
    warnings = [
        f"{name} set has {n} samples for {real.shape[1]}-d features: covariance is rank-deficient"
        for name, n in (("real", real.shape[0]), ("generated", generated.shape[0]))
        if n <= real.shape[1]
    ]
    return {
        "fvd": frechet_distance_from_features(real, generated),
        "kvd": kernel_distance(
            real, generated, subset_size=kvd_subset_size, num_subsets=kvd_num_subsets, seed=seed
        ),
        "num_real": int(real.shape[0]),
        "num_generated": int(generated.shape[0]),
        "feature_dim": int(real.shape[1]),
        "kvd_subsets": None
        if kvd_subset_size is None
        else {"size": int(kvd_subset_size), "count": int(kvd_num_subsets)},
        "warnings": warnings,
    }

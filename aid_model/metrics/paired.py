"""Paired comparison of two pass/fail scores on the same items (exact McNemar test).

When two variants are scored on the same scenes with the same seeds, their difference in
accuracy is read from the discordant scenes only: ``only_first`` passed by the first
variant and failed by the second, ``only_second`` the reverse. Under "no difference" each
discordant scene is equally likely to fall either way, so the two-sided p-value is

    p = min(1, 2 · P[X ≤ min(only_first, only_second)]),   X ~ Binomial(n, 1/2),
    n = only_first + only_second

(exact, no continuity correction; p = 1 when no scene is discordant). Scenes both pass or
both fail say nothing about which variant is better, which is why a paired test separates
differences that two independent standard errors (≈ 3.5 points each at 200 scenes) cannot.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedDifference:
    """The discordant counts of two variants on the same scenes and their exact p-value."""

    only_first: int
    only_second: int
    scenes: int
    p_value: float

    @property
    def difference(self) -> float:
        """Accuracy of the second minus the first, as a share of the scenes."""
        return (self.only_second - self.only_first) / self.scenes


def exact_mcnemar_p(only_first: int, only_second: int) -> float:
    """Two-sided exact McNemar p-value from the two discordant counts."""
    if only_first < 0 or only_second < 0:
        raise ValueError(f"discordant counts must be ≥ 0, got {only_first} and {only_second}")
    n = only_first + only_second
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(only_first, only_second) + 1)) / 2**n
    return min(1.0, 2.0 * tail)


def paired_difference(first: str, second: str) -> PairedDifference:
    """Compares two per-scene records, strings of "1" (passed) and "0" (failed), one
    character per scene in the same scene order."""
    if len(first) != len(second):
        raise ValueError(f"per-scene records of different lengths ({len(first)} and "
                         f"{len(second)} scenes): score both variants on the same scenes")
    if set(first + second) - {"0", "1"}:
        raise ValueError("per-scene records must hold only '0' and '1'")
    only_first = sum(a == "1" and b == "0" for a, b in zip(first, second, strict=True))
    only_second = sum(a == "0" and b == "1" for a, b in zip(first, second, strict=True))
    return PairedDifference(only_first, only_second, len(first),
                            exact_mcnemar_p(only_first, only_second))

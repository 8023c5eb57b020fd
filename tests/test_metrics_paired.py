"""The exact McNemar test the miniature's benchmark uses to compare rows scene by scene."""

from __future__ import annotations

import pytest

from aid_model.metrics.paired import exact_mcnemar_p, paired_difference


@pytest.mark.parametrize(("only_first", "only_second", "expected"), [
    (0, 5, 2 / 32),          # all five discordant scenes one way: 2 · (1/2)^5
    (2, 8, 2 * 56 / 1024),   # 2 · (C(10,0) + C(10,1) + C(10,2)) / 2^10
    (8, 2, 2 * 56 / 1024),   # symmetric
    (3, 3, 1.0),             # an even split is no evidence (capped at 1)
    (0, 0, 1.0),             # no discordant scene
])
def test_exact_mcnemar_p_values_from_the_binomial_tail(only_first, only_second, expected):
    assert exact_mcnemar_p(only_first, only_second) == pytest.approx(expected)


def test_mcnemar_agrees_with_scipys_binomial_test():
    stats = pytest.importorskip("scipy.stats")
    for only_first, only_second in ((13, 30), (40, 22), (1, 9)):
        expected = stats.binomtest(only_first, only_first + only_second, 0.5).pvalue
        assert exact_mcnemar_p(only_first, only_second) == pytest.approx(expected)


def test_a_paired_difference_counts_only_discordant_scenes():
    paired = paired_difference("1100110011", "1010101111")
    # scene 1 and 5: only the first passes; scenes 2, 6 and 7: only the second.
    assert (paired.only_first, paired.only_second, paired.scenes) == (2, 3, 10)
    assert paired.difference == pytest.approx(0.1)
    assert paired.p_value == pytest.approx(1.0)


def test_records_of_other_scenes_are_refused():
    with pytest.raises(ValueError, match=r"different lengths .*same scenes"):
        paired_difference("1100", "110")
    with pytest.raises(ValueError, match="only '0' and '1'"):
        paired_difference("11x0", "1100")

"""The dotted keys two settings trees differ in: nested keys named, one-sided keys counted,
opaque sections reported whole."""

from __future__ import annotations

from aid_model.nested_diff import differing_keys


def test_nested_and_one_sided_keys_are_named_in_order():
    a = {"aid": {"num_frames": 8, "ratio": 1.0}, "seed": 0, "old": 1}
    b = {"aid": {"num_frames": 14, "ratio": 1.0}, "seed": 0, "new": None}
    assert differing_keys(a, b) == ["aid.num_frames", "old"]  # a missing key equals None
    assert differing_keys(a, a) == []


def test_an_opaque_section_is_one_key():
    a = {"data": {"root": "x", "size": 64}, "optim": {"lr": 1e-4}}
    b = {"data": {"root": "y", "size": 32}, "optim": {"lr": 2e-4}}
    assert differing_keys(a, b, opaque=("data",)) == ["data", "optim.lr"]
    assert differing_keys(a, b) == ["data.root", "data.size", "optim.lr"]

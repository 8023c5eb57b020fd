"""Contact sheets: frames in rows, and the labels written left of them."""

import numpy as np
import pytest
import torch

from aid_model.video_io import LABEL_MARGIN, _wrapped, contact_sheet

FRAMES, SIZE, GAP = 3, 32, 2


def _rows(count: int) -> list[torch.Tensor]:
    # Mid-grey videos: the label's black text is the only dark ink on the sheet.
    return [torch.full((FRAMES, SIZE, SIZE, 3), 0.5) for _ in range(count)]


def test_without_labels_the_sheet_is_only_the_frames():
    sheet = np.asarray(contact_sheet(_rows(2), gap=GAP))
    assert sheet.shape == (2 * SIZE + GAP, FRAMES * SIZE + (FRAMES - 1) * GAP, 3)
    assert sheet[:SIZE, :SIZE].min() == sheet[:SIZE, :SIZE].max() == 128


def test_each_label_is_written_in_a_margin_left_of_its_own_row():
    sheet = np.asarray(contact_sheet(_rows(3), gap=GAP, labels=["move left", "", "push up"]))
    assert sheet.shape == (3 * SIZE + 2 * GAP, LABEL_MARGIN + GAP + FRAMES * (SIZE + GAP) - GAP, 3)
    margin = sheet[:, :LABEL_MARGIN].min(axis=2)  # darkest channel per pixel
    first, second, third = (margin[r * (SIZE + GAP) : r * (SIZE + GAP) + SIZE] for r in range(3))
    assert first.min() < 100 and third.min() < 100  # ink where a label was given
    assert second.min() == 255  # an empty label leaves its margin blank
    frames = sheet[:SIZE, LABEL_MARGIN + GAP : LABEL_MARGIN + GAP + SIZE]
    assert frames.min() == frames.max() == 128  # frames moved right, untouched by the text


def test_a_label_for_each_row_is_required():
    with pytest.raises(ValueError, match="2 labels for 3 rows"):
        contact_sheet(_rows(3), labels=["a", "b"])


def test_labels_wrap_by_words_and_are_cut_with_an_ellipsis_where_they_do_not_fit():
    length = len  # one unit a character stands in for the font's widths
    assert _wrapped("move the red circle left", length, 12, 3) == ["move the red", "circle left"]
    assert _wrapped("move the red circle left", length, 12, 1) == ["move the re…"]
    assert _wrapped("ground-truth-through-the-VAE", length, 10, 2) == ["ground-tr…"]
    assert _wrapped("", length, 10, 2) == [""]

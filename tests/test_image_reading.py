"""Reference frames read faithfully: by the pixel mode and its range, upright, or refused
with the file named; the same reader for the CLI, the state prompter and the datasets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from aid_model.data.decode import DecodeError
from aid_model.data.decode import read_image as read_dataset_frame
from aid_model.images import as_frame, load_image, read_image
from aid_model.states import load_image as load_prompter_image

# A horizontal ramp from black to white: its true mean is 0.5.
RAMP = np.tile(np.linspace(0.0, 1.0, 64, dtype=np.float64), (48, 1))


def saved(tmp_path: Path, name: str, image: Image.Image, **options) -> Path:
    path = tmp_path / name
    image.save(path, **options)
    return path


def every_reader(path: Path) -> list[np.ndarray]:
    """The frame as each user of the reader sees it, (H, W, 3) in [0, 1]."""
    return [
        read_image(path),
        load_image(path).permute(1, 2, 0).numpy(),
        np.asarray(load_prompter_image(path), dtype=np.float32) / 255.0,
        read_dataset_frame(path).astype(np.float32) / 255.0,
    ]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_sixteen_bit_greyscale_is_read_by_its_range(tmp_path, suffix) -> None:
    image = Image.fromarray((RAMP * 65535).round().astype(np.uint16))
    assert image.mode == "I;16"
    path = saved(tmp_path, f"grey16{suffix}", image)
    for frame in every_reader(path):
        assert frame.shape == (48, 64, 3)
        assert abs(float(frame.mean()) - 0.5) < 3e-3  # read as almost white before: 0.997
        np.testing.assert_allclose(frame[..., 0], RAMP, atol=1 / 255 + 1e-6)


def test_float_tiff_in_zero_to_one_is_read_as_it_is(tmp_path) -> None:
    path = saved(tmp_path, "float.tif", Image.fromarray(RAMP.astype(np.float32)))
    for frame in every_reader(path):
        assert abs(float(frame.mean()) - 0.5) < 3e-3  # read as black before
        np.testing.assert_allclose(frame[..., 2], RAMP, atol=1 / 255 + 1e-6)


@pytest.mark.parametrize(
    ("values", "found"),
    [(RAMP * 1000.0, "from 0 to 1000"), (np.where(RAMP > 0.5, np.nan, RAMP), "nan")],
    ids=["out of range", "not finite"],
)
def test_float_tiff_that_is_not_zero_to_one_is_refused_naming_the_file(tmp_path, values,
                                                                       found) -> None:
    path = saved(tmp_path, "hdr.tif", Image.fromarray(values.astype(np.float32)))
    with pytest.raises(ValueError) as refused:
        read_image(path)
    message = str(refused.value)
    assert str(path) in message and "expected 0 to 1" in message and "\n" not in message
    assert found in message.lower()
    with pytest.raises(DecodeError, match=r"hdr\.tif"):
        read_dataset_frame(path)


def test_thirty_two_bit_integer_pixels_are_refused(tmp_path) -> None:
    path = saved(tmp_path, "int32.tif", Image.fromarray((RAMP * 1e6).astype(np.int32)))
    with pytest.raises(ValueError, match=r"int32\.tif: 32-bit integer pixels"):
        load_image(path)


def test_jpeg_exif_orientation_is_applied(tmp_path) -> None:
    # Stored 40 wide and 20 high, left half red; orientation 6 ("rotate 90° clockwise to
    # view") shows it 20 wide and 40 high with the red half on top.
    stored = np.zeros((20, 40, 3), np.uint8)
    stored[:, :20] = (255, 0, 0)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = saved(tmp_path, "phone.jpg", Image.fromarray(stored), exif=exif, quality=95)
    for frame in every_reader(path):
        assert frame.shape == (40, 20, 3)
        assert frame[:18, :, 0].mean() > 0.9 and frame[22:, :, 0].mean() < 0.1


def test_eight_bit_modes_are_converted_by_their_meaning(tmp_path) -> None:
    grey = Image.fromarray((RAMP * 255).round().astype(np.uint8))
    assert np.array_equal(read_image(saved(tmp_path, "l.png", grey))[..., 1],
                          np.asarray(grey, np.float32) / 255.0)
    half_clear = Image.new("LA", (4, 4), (0, 0))  # black, fully transparent: white
    assert np.allclose(read_image(saved(tmp_path, "la.png", half_clear)), 1.0)
    cmyk = Image.new("CMYK", (4, 4), (0, 255, 255, 0))  # cyan-free, full magenta+yellow: red
    assert np.allclose(read_image(saved(tmp_path, "cmyk.tif", cmyk))[0, 0], (1.0, 0.0, 0.0))
    palette = Image.new("P", (4, 4), 1)
    palette.putpalette([0, 0, 0, 0, 0, 255] + [0] * 762)
    assert np.allclose(read_image(saved(tmp_path, "p.png", palette))[0, 0], (0.0, 0.0, 1.0))


def test_an_eight_bit_rgb_frame_is_read_exactly(tmp_path) -> None:
    pixels = np.random.default_rng(0).integers(0, 256, (9, 7, 3), dtype=np.uint8)
    path = saved(tmp_path, "rgb.png", Image.fromarray(pixels))
    assert np.array_equal(read_image(path), pixels.astype(np.float32) / 255.0)
    assert np.array_equal(np.asarray(load_prompter_image(path)), pixels)
    assert np.array_equal(read_dataset_frame(path), pixels)


def test_a_file_that_is_not_an_image_is_refused_in_one_line_naming_it(tmp_path) -> None:
    path = tmp_path / "notes.png"
    path.write_text("not an image\n")
    with pytest.raises(ValueError) as refused:
        load_image(path)
    assert str(path) in str(refused.value) and "\n" not in str(refused.value)


def test_sixteen_bit_arrays_and_pil_images_in_memory_are_read_by_their_range() -> None:
    ramp16 = (RAMP * 65535).round().astype(np.uint16)
    assert abs(float(as_frame(ramp16).mean()) - 0.5) < 1e-3
    assert abs(float(as_frame(Image.fromarray(ramp16)).mean()) - 0.5) < 1e-3

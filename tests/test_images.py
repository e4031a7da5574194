"""Reading images: every mode to the spec's channels, orientation, resizing, bad files."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec.features import ImageWarning, list_images, load_image, preprocess


def save(tmp_path, image, name="x.png", **kwargs):
    path = tmp_path / name
    image.save(path, **kwargs)
    return path


def test_grey_to_rgb_and_rgb_to_grey(tmp_path):
    grey = save(tmp_path, Image.new("L", (4, 3), 200))
    assert load_image(grey, 3).shape == (3, 4, 3)
    assert np.all(load_image(grey, 3) == 200)
    rgb = save(tmp_path, Image.new("RGB", (4, 3), (255, 0, 0)), "red.png")
    assert load_image(rgb, 1)[..., 0].tolist() == [[76.0] * 4] * 3  # ITU-R 601 luma of red


def test_alpha_is_flattened_onto_white_unless_kept(tmp_path):
    image = Image.new("RGBA", (2, 1), (255, 0, 0, 0))
    image.putpixel((1, 0), (255, 0, 0, 255))
    path = save(tmp_path, image)
    assert load_image(path, 3)[0].tolist() == [[255, 255, 255], [255, 0, 0]]
    assert load_image(path, 4)[0].tolist() == [[255, 0, 0, 0], [255, 0, 0, 255]]
    la = save(tmp_path, Image.new("LA", (1, 1), (0, 0)), "la.png")
    assert load_image(la, 1).tolist() == [[[255.0]]]


def test_palette_cmyk_and_one_bit(tmp_path):
    palette = Image.new("P", (2, 2), 1)
    palette.putpalette([0, 0, 0, 0, 255, 0] + [0] * 762)
    assert load_image(save(tmp_path, palette, "p.png"), 3)[0, 0].tolist() == [0, 255, 0]
    cmyk = save(tmp_path, Image.new("CMYK", (2, 2), (0, 255, 255, 0)), "c.jpg", quality=100)
    assert np.allclose(load_image(cmyk, 3)[0, 0], [255, 0, 0], atol=3)
    bit = Image.new("1", (2, 1), 0)
    bit.putpixel((1, 0), 1)
    assert load_image(save(tmp_path, bit, "b.png"), 1)[0, :, 0].tolist() == [0, 255]


def test_sixteen_bit_is_scaled_by_its_real_range(tmp_path):
    data = np.array([[1000, 2000, 3000]], dtype=np.uint16)
    path = save(tmp_path, Image.fromarray(data), "deep.png")
    assert Image.open(path).mode.startswith("I")
    assert load_image(path, 1)[0, :, 0].tolist() == [0.0, 128.0, 255.0]  # 127.5 rounded


def test_exif_orientation_is_applied(tmp_path):
    image = Image.new("RGB", (4, 2), (0, 0, 0))
    image.putpixel((0, 0), (255, 255, 255))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    path = save(tmp_path, image, "o.jpg", exif=exif, quality=100)
    loaded = load_image(path, 1)
    assert loaded.shape == (4, 2, 1)
    assert loaded[0, 1, 0] > 200 and loaded[0, 0, 0] < 60


def test_animated_image_uses_first_frame_with_a_warning(tmp_path):
    frames = [Image.new("L", (2, 2), value) for value in (10, 250)]
    path = tmp_path / "a.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        loaded = load_image(path, 1)
    assert np.all(loaded < 30)
    assert [str(w.message) for w in caught if w.category is ImageWarning] == [
        f"{path}: animated image; using its first frame"]


def test_resize_policies(tmp_path):
    wide = np.zeros((10, 40), np.uint8)
    wide[:, 10:30] = 255  # white middle half
    path = save(tmp_path, Image.fromarray(wide), "wide.png")
    cropped = load_image(path, 1, (10, 10), "crop")
    stretched = load_image(path, 1, (10, 10), "resize")
    assert cropped.shape == stretched.shape == (10, 10, 1)
    assert cropped.min() == 255          # the centre is all white
    assert stretched[:, 0].max() < 128   # the sides stay dark
    assert load_image(path, 1, (None, None)).shape == (10, 40, 1)


def test_preprocessing_modes():
    white = np.full((1, 1, 1, 3), 255.0)
    assert preprocess(white, "caffe")[0, 0, 0].tolist() == pytest.approx(
        [255 - 103.939, 255 - 116.779, 255 - 123.68])
    red = np.array([[[[255.0, 0, 0]]]])
    assert preprocess(red, "caffe")[0, 0, 0].tolist() == pytest.approx(
        [-103.939, -116.779, 255 - 123.68])
    assert preprocess(white, "torch")[0, 0, 0].tolist() == pytest.approx(
        [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], rel=1e-6)
    assert preprocess(white, "tf").tolist() == [[[[1.0, 1.0, 1.0]]]]
    assert preprocess(white, "none").tolist() == white.tolist()
    with pytest.raises(vggspec.UsageError, match="caffe preprocessing needs 3 channels"):
        preprocess(np.zeros((1, 2, 2, 1)), "caffe")


@pytest.mark.parametrize("content, message", [
    (b"", "an empty file"),
    (b"this is not an image", "not an image Pillow can read"),
])
def test_non_images_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.jpg"
    path.write_bytes(content)
    with pytest.raises(vggspec.InputError) as caught:
        load_image(path)
    assert str(caught.value) == f"{path}: {message}"


def test_truncated_jpeg_is_refused(tmp_path):
    from matplotlib import cbook

    data = cbook.get_sample_data("grace_hopper.jpg").read()
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(vggspec.InputError) as caught:
        load_image(path)
    assert str(caught.value).startswith(f"{path}: cannot read the image (truncated or corrupt?)")


@pytest.mark.parametrize("side", [40, 50])  # over the limit: a warning; over twice: an error
def test_decompression_bombs_are_refused(tmp_path, monkeypatch, side):
    path = save(tmp_path, Image.new("L", (side, side)), "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(vggspec.InputError) as caught:
        load_image(path)
    assert str(caught.value) == (f"{path}: image is larger than Pillow's decompression-bomb "
                                 f"limit of 1,000 pixels; refused")


def test_list_images_expands_folders(tmp_path):
    (tmp_path / "b.png").write_bytes(b"")
    (tmp_path / "a.JPG").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("x")
    assert [p.name for p in list_images([tmp_path])] == ["a.JPG", "b.png"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(vggspec.InputError, match="folder has no images"):
        list_images([empty])
    with pytest.raises(vggspec.InputError, match="nope.png: no such file$"):
        list_images([tmp_path / "nope.png"])

"""`vggspec embed`: vectors equal to the feature model's, shards that survive Ctrl-C and
resume, bad images listed, settings guarded, JPEG draft mode, mixed precision's error."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import vggspec
from vggspec import cli
from vggspec.embed import embed, read_embeddings, shard_files
from vggspec.features import load_image, preprocess

SMALL = """\
name: small
input: {shape: [16, 16, 3]}
blocks:
  - [8, max]
  - [16, max]
head: {type: none}
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(1)
    for index in range(10):
        pixels = rng.integers(0, 256, (18 + index, 20, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:02d}.png")
    return folder


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("spec") / "small.yaml"
    path.write_text(SMALL)
    return path


@pytest.fixture(scope="module")
def weights(spec_file):
    """One set of weights for every model of a test (fresh models draw new ones)."""
    path = spec_file.with_name("small.weights.h5")
    vggspec.build_model(spec_file).save_weights(path)
    return path


def expected_vectors(spec_file, weights, files, tap="block2", pool=np.mean):
    model = vggspec.feature_model(spec_file, [tap], weights=weights)
    pixels = np.stack([load_image(path, 3, (16, 16)) for path in files])
    maps = np.asarray(model(preprocess(pixels, "caffe"))[tap])
    return pool(maps, axis=(1, 2))


def test_vectors_are_the_feature_model_pooled_and_shards_hold_them_in_order(
        spec_file, weights, images, tmp_path, capsys):
    out = tmp_path / "out"
    assert cli.main(["embed", str(spec_file), str(images), "--out", str(out),
                     "--batch-size", "3", "--shard-rows", "4", "--weights", str(weights)]) == 0
    assert capsys.readouterr().out == (f"wrote 10 vectors of 16 (block2, avg pool) in 3 "
                                       f"shards to {out}/\n")
    assert sorted(p.name for p in out.iterdir()) == [
        "embed.json", "shard-00000.npy", "shard-00000.paths", "shard-00001.npy",
        "shard-00001.paths", "shard-00002.npy", "shard-00002.paths"]
    assert [len(np.load(vectors)) for vectors, _ in shard_files(out)] == [4, 4, 2]
    paths, vectors = read_embeddings(out)
    files = sorted(images.iterdir())
    assert paths == [str(path) for path in files]
    assert vectors.dtype == np.float32 and vectors.shape == (10, 16)
    np.testing.assert_allclose(vectors, expected_vectors(spec_file, weights, files), rtol=1e-5,
                               atol=1e-5)
    meta = json.loads((out / "embed.json").read_text())
    assert (meta["format"], meta["tap"], meta["pool"], meta["length"]) == (
        "vggspec.embed/1", "block2", "avg", 16)


def test_max_and_no_pooling(spec_file, weights, images, tmp_path):
    files = sorted(images.iterdir())[:3]
    embed(spec_file, files, tmp_path / "max", pool="max", weights=weights)
    np.testing.assert_allclose(read_embeddings(tmp_path / "max")[1],
                               expected_vectors(spec_file, weights, files, pool=np.max), rtol=1e-5,
                               atol=1e-5)
    report = embed(spec_file, files, tmp_path / "none", pool="none", tap="block1")
    assert report.length == 8 * 8 * 8
    with pytest.raises(vggspec.UsageError, match="--pool none needs a fixed input size"):
        open_size = vggspec.spec_from_text(SMALL.replace("[16, 16, 3]", "[null, null, 3]"))
        embed(open_size, files, tmp_path / "open", pool="none")


def test_ctrl_c_keeps_whole_shards_and_a_rerun_finishes_without_repeats(
        spec_file, weights, images, tmp_path):
    out = tmp_path / "out"
    calls = []

    def stop_after_two_batches(done: int, total: int) -> None:
        calls.append(done)
        if len(calls) == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        embed(spec_file, [images], out, batch_size=3, shard_rows=4, weights=weights,
              progress=stop_after_two_batches)
    assert caught.value.report.written == 4  # the shard in progress (2 rows) is lost
    assert [len(np.load(v)) for v, _ in shard_files(out)] == [4]
    report = embed(spec_file, [images], out, batch_size=3, shard_rows=4, weights=weights)
    assert (report.skipped, report.written) == (4, 6)
    paths, vectors = read_embeddings(out)
    assert sorted(paths) == sorted(str(p) for p in images.iterdir()) and len(paths) == 10
    np.testing.assert_allclose(vectors, expected_vectors(spec_file, weights, [images / p.split("/")[-1]
                                                                      for p in paths]),
                               rtol=1e-5, atol=1e-5)
    again = embed(spec_file, [images], out, weights=weights)
    assert (again.skipped, again.written, again.shards) == (10, 0, [])


def test_other_settings_or_a_foreign_folder_are_refused(spec_file, images, tmp_path,
                                                        capsys):
    out = tmp_path / "out"
    embed(spec_file, [images], out)
    assert cli.main(["embed", str(spec_file), str(images), "--out", str(out), "--pool",
                     "max"]) == 2
    assert capsys.readouterr().err == (f"{out}: holds embeddings made with other settings "
                                       f"(see embed.json); give --out another folder\n")
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "shard-00000.npy").write_bytes(b"")
    assert cli.main(["embed", str(spec_file), str(images), "--out", str(foreign)]) == 2
    assert capsys.readouterr().err == (f"{foreign}: holds shards but no embed.json: not a "
                                       f"vggspec embed folder, or a damaged one\n")
    assert cli.main(["embed", str(spec_file), str(images), "--out", str(out), "--tap",
                     "block9"]) == 2
    assert "block9" in capsys.readouterr().err


def test_bad_images_are_skipped_and_listed(spec_file, images, tmp_path, capsys):
    folder = tmp_path / "mixed"
    folder.mkdir()
    for path in sorted(images.iterdir())[:2]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not a jpeg")
    assert cli.main(["embed", str(spec_file), str(folder), "--out", str(tmp_path / "out")]) == 2
    captured = capsys.readouterr()
    assert captured.out.startswith("wrote 2 vectors of 16 ")
    assert captured.err.splitlines()[-2:] == [
        f"skipped: {folder / 'broken.jpg'}: not an image Pillow can read",
        "1 image could not be read and was skipped"]


def test_jpeg_draft_mode_decodes_small_and_stays_close(tmp_path):
    from matplotlib import cbook

    photo = Image.open(cbook.get_sample_data("grace_hopper.jpg")).convert("RGB")
    large = photo.resize((1024, 1200))
    large.save(tmp_path / "large.jpg", quality=95)
    full = load_image(tmp_path / "large.jpg", 3, (224, 224))
    drafted = load_image(tmp_path / "large.jpg", 3, (224, 224), draft=True)
    assert drafted.shape == full.shape == (224, 224, 3)
    difference = np.abs(drafted - full)
    assert 0 < difference.mean() < 3.0  # another decode, not another picture
    with Image.open(tmp_path / "large.jpg") as image:
        image.draft(None, (224, 224))
        assert image.size == (256, 300)  # decoded at 1/4: what draft=True asks for


def test_bfloat16_vectors_stay_within_two_percent_of_float32(images, tmp_path):
    """The error mixed precision costs, measured per vector (relative L2)."""
    vgg = vggspec.spec_from_text("extends: vgg11\ninput: {shape: [64, 64, 3]}\n"
                                 "head: {type: none}\n")
    files = sorted(images.iterdir())[:4]
    vgg_weights = tmp_path / "vgg11.weights.h5"
    vggspec.build_model(vgg).save_weights(vgg_weights)
    for tap in ("block1", "block3", "block5"):
        embed(vgg, files, tmp_path / f"f32-{tap}", tap=tap, pool="none", weights=vgg_weights)
        embed(vgg, files, tmp_path / f"bf16-{tap}", tap=tap, pool="none", weights=vgg_weights,
              precision="bfloat16")
        exact = read_embeddings(tmp_path / f"f32-{tap}")[1]
        rounded = read_embeddings(tmp_path / f"bf16-{tap}")[1]
        error = np.linalg.norm(rounded - exact, axis=1) / np.linalg.norm(exact, axis=1)
        assert error.max() < 0.02, (tap, error)


def test_features_in_bfloat16_stay_within_two_percent_of_float32(images, tmp_path, capsys):
    spec = tmp_path / "vgg.yaml"
    spec.write_text("extends: vgg11\ninput: {shape: [32, 32, 3]}\nhead: {type: none}\n")
    weights = tmp_path / "vgg.weights.h5"
    vggspec.build_model(spec).save_weights(weights)
    image = sorted(images.iterdir())[0]
    maps = {}
    for precision in ("float32", "bfloat16"):
        assert cli.main(["features", str(spec), str(image), "--out", str(tmp_path / precision),
                         "--weights", str(weights), "--npz", "--no-png", "--precision",
                         precision]) == 0
        with np.load(tmp_path / precision / image.stem / "features.npz") as saved:
            maps[precision] = {tap: saved[tap] for tap in saved.files}
    capsys.readouterr()
    assert sorted(maps["bfloat16"]) == ["block1", "block2", "block3", "block4", "block5"]
    for tap, exact in maps["float32"].items():
        rounded = maps["bfloat16"][tap]
        assert rounded.dtype == np.float32 and rounded.shape == exact.shape
        error = np.linalg.norm(rounded - exact) / np.linalg.norm(exact)
        assert 0 < error < 0.02, (tap, error)


def test_a_published_name_and_its_file_are_the_same_weights_to_a_rerun():
    from vggspec.embed import _settings

    spec = vggspec.load_spec("archs/vgg16.yaml")
    by_name = _settings(spec, "block5", "avg", "caffe", "imagenet", "crop", "float32")
    by_file = _settings(spec, "block5", "avg", "caffe",
                        "/cache/models/vgg16_weights_tf_dim_ordering_tf_kernels.h5", "crop",
                        "float32")
    assert by_name == by_file
    assert by_name["weights"] == "vgg16_weights_tf_dim_ordering_tf_kernels.h5"


def test_hostile_or_gapped_folders_lose_nothing_and_fail_in_one_line(spec_file, weights,
                                                                     images, tmp_path):
    import shutil

    out = tmp_path / "out"
    files = sorted(images.iterdir())
    embed(spec_file, files[:4], out, shard_rows=2, weights=weights)
    (out / "shard-00000.npy").unlink()            # a gap: shard 0 is incomplete now
    report = embed(spec_file, files[4:6], out, shard_rows=2, weights=weights)
    assert report.shards == [out / "shard-00002.npy"]   # never shard 0 or 1 again
    assert len(np.load(out / "shard-00001.npy")) == 2
    crafted = tmp_path / "crafted"
    shutil.copytree(out, crafted)
    (crafted / "shard-00001.paths").write_text('"a.png"\n5\n')
    with pytest.raises(vggspec.InputError, match=r"shard-00001.paths:2: not a path"):
        embed(spec_file, files, crafted, weights=weights)
    (crafted / "shard-00001.paths").write_text('"a.png"\n"b.png"\n')
    np.save(crafted / "shard-00001.npy", np.zeros((2, 3), np.float64))
    with pytest.raises(vggspec.InputError, match=r"shard-00001.npy: holds float64 \(2, 3\), "
                                                 r"not float32 rows of 16 length"):
        embed(spec_file, files, crafted, weights=weights)


def test_other_weights_with_the_same_name_are_other_settings_and_train_edits_are_not(
        spec_file, weights, images, tmp_path):
    files = sorted(images.iterdir())[:2]
    out = tmp_path / "out"
    embed(spec_file, files, out, weights=weights)
    other = tmp_path / "other" / weights.name
    other.parent.mkdir()
    vggspec.build_model(spec_file).save_weights(other)
    with pytest.raises(vggspec.InputError, match="made with other settings"):
        embed(spec_file, files, out, weights=other)
    edited = tmp_path / "edited.yaml"
    edited.write_text(spec_file.read_text() + "description: now with notes\n"
                      "train: {epochs: 3}\n")
    assert embed(edited, files, out, weights=weights).skipped == 2

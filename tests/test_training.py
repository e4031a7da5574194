"""`vggspec train` and `vggspec evaluate`: what a run leaves, resume, bad data, and the
data pipeline against `vggspec features`' own preparation of images."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import vggspec
from conftest import ROOT, run_cli
from vggspec import cli, training
from vggspec.data import batches, decode, scan_folder, split
from vggspec.features import load_image, preprocess

TINY = """\
name: tiny
input: {shape: [16, 16, 3]}
defaults: {batch_norm: {momentum: 0.9}}
blocks:
  - [8, max]
  - [16, max]
head: {type: global_avg, classes: 3}
train: {epochs: 3, batch_size: 8, learning_rate: 0.01}
"""
COLOURS = [(200, 40, 40), (40, 200, 40), (40, 40, 200)]


def make_folder(root: Path, per_class: int = 10, classes=("red", "green", "blue"),
                size=(20, 24), seed: int = 0) -> Path:
    """Noisy images of one colour per class: a task a tiny net learns in a few epochs."""
    rng = np.random.default_rng(seed)
    for name, colour in zip(classes, COLOURS * 4):
        (root / name).mkdir(parents=True, exist_ok=True)
        for index in range(per_class):
            noise = rng.integers(0, 70, (*size, 3))
            pixels = np.clip(np.asarray(colour) + noise - 35, 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{index}.png")
    return root


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_folder(tmp_path_factory.mktemp("data") / "colours")


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("spec") / "tiny.yaml"
    path.write_text(TINY)
    return path


@pytest.fixture(scope="module")
def finished(folder, spec_file, tmp_path_factory):
    lines: list[str] = []
    run = tmp_path_factory.mktemp("runs") / "run"
    result = training.train(spec_file, folder, run, log=lines.append)
    return result, lines


# --- what a run leaves --------------------------------------------------------------

def test_a_run_learns_and_leaves_every_file(finished, spec_file):
    result, lines = finished
    run = result.run
    assert sorted(p.name for p in run.iterdir()) == sorted(
        ["best.keras", "last.keras", "history.csv", "curves.png", "confusion.png",
         "metrics.json", "spec.yaml", "state.json", "logs"])
    assert [row["epoch"] for row in result.history] == [1, 2, 3]
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert lines[:2] == ["devices: 1 device", "data: 24 training and 6 validation images, "
                         "3 classes; preprocessing caffe, crop"]
    assert [line.split("  ")[0] for line in lines[2:]] == ["epoch 1/3", "epoch 2/3",
                                                          "epoch 3/3"]
    with open(run / "history.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == list(training.HISTORY_COLUMNS)
    assert [int(row["epoch"]) for row in rows] == [1, 2, 3]
    assert all(float(row["images_per_second"]) > 0 for row in rows)
    assert float(rows[-1]["learning_rate"]) < float(rows[0]["learning_rate"])  # cosine


def test_metrics_json_describes_the_best_epoch_on_the_validation_images(finished):
    result, _ = finished
    metrics = json.loads((result.run / "metrics.json").read_text())
    assert set(metrics) == {"images", "accuracy", "classes", "confusion", "class_names",
                            "epoch", "set"}
    assert metrics["images"] == 6 and metrics["set"] == "validation"
    assert metrics["class_names"] == ["blue", "green", "red"]
    assert metrics["epoch"] == result.best_epoch
    assert 0 <= metrics["accuracy"] <= 1
    assert sum(map(sum, metrics["confusion"])) == 6
    assert [c["images"] for c in metrics["classes"]] == [2, 2, 2]
    best = max(row["val_accuracy"] for row in result.history)
    assert metrics["accuracy"] == pytest.approx(best, abs=1e-6)


def test_the_pictures_have_their_sizes_and_content(finished):
    result, _ = finished
    curves = np.asarray(Image.open(result.run / "curves.png").convert("RGB"))
    confusion = np.asarray(Image.open(result.run / "confusion.png").convert("RGB"))
    assert curves.shape == (400, 1000, 3)
    assert confusion.shape[0] >= 400
    for picture in (curves, confusion):
        assert picture.std() > 20


def test_the_models_reload_with_plain_keras_and_carry_their_classes(finished, folder):
    import keras

    result, _ = finished
    model = keras.models.load_model(result.run / "best.keras")
    info = training.model_info(result.run / "best.keras")
    assert info["class_names"] == ["blue", "green", "red"]
    assert (info["preprocess"], info["resize"], info["input_shape"]) == ("caffe", "crop",
                                                                         [16, 16, 3])
    image = load_image(folder / "red" / "0.png", 3, (16, 16))
    probabilities = model.predict_on_batch(preprocess(image[None], "caffe"))
    assert probabilities.shape == (1, 3)
    with pytest.raises(vggspec.InputError, match="not a .keras model file"):
        training.model_info(ROOT / "README.md")


def test_spec_yaml_is_the_resolved_spec_with_its_settings(finished):
    result, _ = finished
    spec = vggspec.load_spec(result.run / "spec.yaml")
    assert spec.train.epochs == 3 and spec.train.learning_rate == 0.01
    assert spec.train.preprocess == "caffe"
    assert spec.head.classes == 3 and spec.blocks[0].convs[0].batch_norm.momentum == 0.9


def test_tensorboard_logs_are_written(finished):
    result, _ = finished
    events = list((result.run / "logs").rglob("events.out.tfevents.*"))
    assert {path.parent.name for path in events} == {"train", "validation"}


def test_evaluate_reports_the_run_on_a_folder(finished, folder, tmp_path, capsys):
    result, _ = finished
    assert cli.main(["evaluate", str(result.run), "--data", str(folder), "--out",
                     str(tmp_path / "eval")]) == 0
    out = capsys.readouterr().out.splitlines()
    figures = training.evaluate(result.run, folder)
    assert figures["images"] == 30
    assert out[0] == (f"accuracy {figures['accuracy']:.4f} "
                      f"({round(figures['accuracy'] * 30)} of 30 images)")
    assert [line.split()[0] for line in out[4:7]] == ["blue", "green", "red"]
    assert json.loads((tmp_path / "eval" / "metrics.json").read_text())["images"] == 30
    assert Image.open(tmp_path / "eval" / "confusion.png").size[0] >= 400


def test_evaluate_refuses_other_classes_and_foreign_models(finished, tmp_path, capsys):
    result, _ = finished
    other = make_folder(tmp_path / "other", per_class=1, classes=("red", "green", "cyan"))
    assert cli.main(["evaluate", str(result.run), "--data", str(other)]) == 2
    assert capsys.readouterr().err == (
        f"{other}: its class folders differ from the model's classes: folders not among the "
        f"model's classes: 'cyan'; model's classes with no folder: 'blue'\n")
    import keras

    plain = tmp_path / "plain.keras"
    keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)]).save(plain)
    assert cli.main(["evaluate", str(plain), "--data", str(other)]) == 2
    assert capsys.readouterr().err == (f"{plain}: has no class names: not a model written "
                                       f"by vggspec train\n")
    import zipfile

    damaged = tmp_path / "damaged.keras"
    damaged.write_bytes(plain.read_bytes())
    with zipfile.ZipFile(damaged, "a") as archive:
        archive.writestr("vggspec.json", json.dumps({
            "class_names": ["red", "green", "cyan"], "input_shape": [16, "16", 3],
            "preprocess": "caffe", "resize": "crop"}))
    assert cli.main(["evaluate", str(damaged), "--data", str(other)]) == 2
    assert capsys.readouterr().err == (
        f"{damaged}: its vggspec.json is damaged (class names, input shape, preprocessing or "
        f"resize policy)\n")


# --- resume -------------------------------------------------------------------------

def test_resume_after_an_interrupt_ends_where_an_uninterrupted_run_does(
        folder, tmp_path):
    """With dropout and both augmentations, whose random draws must resume too."""
    spec_file = tmp_path / "random.yaml"
    spec_file.write_text(TINY.replace("classes: 3}", "classes: 3, dropout: 0.5}").replace(
        "learning_rate: 0.01}", "learning_rate: 0.01,\n        augment: {flip: true, crop: true}}"))
    assert vggspec.load_spec(spec_file).train.augment.crop
    settings = dict(epochs=4, seed=5, log=lambda line: None)
    straight = training.train(spec_file, folder, tmp_path / "straight", **settings)

    def interrupt_after_epoch_2(line: str) -> None:
        if line.startswith("epoch 2/"):
            raise KeyboardInterrupt

    with pytest.raises(training.TrainingInterrupted) as caught:
        training.train(spec_file, folder, tmp_path / "resumed", epochs=4, seed=5,
                       log=interrupt_after_epoch_2)
    assert training.model_info(tmp_path / "resumed" / "last.keras")["epoch"] == 2
    assert str(caught.value) == (f"interrupted in epoch 3: {tmp_path / 'resumed'} holds "
                                 f"epochs 1-2; add --resume to continue from there")
    assert json.loads((tmp_path / "resumed" / "state.json").read_text())["epochs_done"] == 2
    resumed = training.train(spec_file, folder, tmp_path / "resumed", resume=True, **settings)
    assert [row["epoch"] for row in resumed.history] == [1, 2, 3, 4]
    for key in ("loss", "accuracy", "val_loss", "val_accuracy", "learning_rate"):
        np.testing.assert_allclose([row[key] for row in resumed.history],
                                   [row[key] for row in straight.history], rtol=1e-4,
                                   atol=1e-6, err_msg=key)
    with open(tmp_path / "resumed" / "history.csv") as handle:
        assert len(handle.read().splitlines()) == 5


def test_resume_refuses_another_spec_and_a_finished_run(finished, folder, tmp_path, capsys):
    result, _ = finished
    other = tmp_path / "other.yaml"
    other.write_text(TINY.replace("[16, max]", "[32, max]"))
    assert cli.main(["train", str(other), "--data", str(folder), "--out", str(result.run),
                     "--resume"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{result.run}: was made with another spec or other training settings (only "
        f"epochs may change on --resume); compare {result.run}/spec.yaml")
    assert cli.main(["train", str(result.run / "spec.yaml"), "--data", str(folder), "--out",
                     str(result.run), "--resume"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{result.run}: already trained for 3 epochs; pass --epochs with more to continue it")
    assert cli.main(["train", str(other), "--data", str(folder), "--out",
                     str(tmp_path / "new"), "--resume"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{tmp_path / 'new'}: nothing to resume: no state.json and last.keras (a run saves "
        f"them after its first epoch)")


def test_ctrl_c_in_the_cli_exits_130_and_resume_finishes_the_run(folder, spec_file,
                                                                   tmp_path):
    """A real SIGINT to `vggspec train` after its first epoch line."""
    run = tmp_path / "run"
    process = subprocess.Popen(
        [sys.executable, "-m", "vggspec", "train", str(spec_file), "--data", str(folder),
         "--out", str(run), "--epochs", "30"], cwd=ROOT, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    try:
        for line in process.stdout:
            if line.startswith("epoch 1/30"):
                process.send_signal(signal.SIGINT)
                break
        out, err = process.communicate(timeout=120)
    finally:
        process.kill()
    assert process.returncode == 130
    done = json.loads((run / "state.json").read_text())["epochs_done"]
    assert err.splitlines()[-1] == (f"interrupted in epoch {done + 1}: {run} holds epochs "
                                    f"1-{done}; add --resume to continue from there")
    assert not [p for p in run.iterdir() if p.name.startswith(".")]  # no temporary files
    # --epochs may grow or shrink on --resume: finish one epoch after the interrupt.
    finished = run_cli("train", str(spec_file), "--data", str(folder), "--out", str(run),
                       "--epochs", str(done + 1), "--resume")
    assert finished.returncode == 0, finished.stderr
    assert finished.stdout.splitlines()[2].startswith(f"epoch {done + 1}/{done + 1}  loss ")
    with open(run / "history.csv") as handle:
        assert len(handle.read().splitlines()) == done + 2


# --- bad data: one line, exit 2, before training -------------------------------------

def test_bad_data_folders_are_refused_before_training(spec_file, tmp_path, capsys):
    def refused(data, *extra) -> str:
        assert cli.main(["train", str(spec_file), "--data", str(data), "--out",
                         str(tmp_path / "run"), *extra]) == 2
        assert not (tmp_path / "run").exists()
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1, err
        return err[0]

    assert refused(tmp_path / "missing") == f"{tmp_path / 'missing'}: no such data folder"
    (tmp_path / "empty").mkdir()
    assert refused(tmp_path / "empty") == (f"{tmp_path / 'empty'}: has no class folders (one "
                                           f"folder of images per class)")
    loose = tmp_path / "loose"
    loose.mkdir()
    Image.new("RGB", (8, 8)).save(loose / "a.png")
    assert refused(loose) == (f"{loose}: has images but no class folders: put each class's "
                              f"images in a folder named after the class ({loose}/cat/1.jpg)")
    hollow = make_folder(tmp_path / "hollow", per_class=2, classes=("a", "b"))
    (hollow / "c").mkdir()
    (hollow / "c" / "notes.txt").write_text("no images")
    assert refused(hollow).startswith(f"{hollow}: class folder has no images (.jpg, ")
    assert refused(hollow).endswith("): 'c'")
    single = make_folder(tmp_path / "single", per_class=2, classes=("only",))
    assert refused(single) == (f"{single}: only one class folder ('only'); a classifier "
                               f"needs at least two")
    seven = make_folder(tmp_path / "seven", per_class=1,
                        classes=tuple("abcdefg"))
    assert refused(seven) == (f"{spec_file}:7:35: $.head.classes: the spec has 3 classes, {seven} has "
                              f"7 class folders; set head.classes: 7, or pass "
                              f"--classes-from-data")
    assert refused(seven, "--partial") == "--partial needs --weights"
    other_val = make_folder(tmp_path / "val", per_class=1, classes=("x", "y", "z"))
    three = make_folder(tmp_path / "three", per_class=2)
    assert refused(three, "--val", str(other_val)) == (
        f"{other_val}: its class folders differ from {three}'s: folders not among the "
        f"training classes: 'x', 'y', 'z'; training classes with no folder: 'blue', 'green', "
        f"'red'")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "old.txt").write_text("")
    assert cli.main(["train", str(spec_file), "--data", str(three), "--out",
                     str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"{tmp_path / 'run'}: the folder is not empty "
                                       f"('old.txt') and holds no run; give --out a new or "
                                       f"empty folder\n")
    (tmp_path / "run" / "state.json").write_text("{}")
    assert cli.main(["train", str(spec_file), "--data", str(three), "--out",
                     str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err == (f"{tmp_path / 'run'}: the folder holds an earlier run; "
                                       f"pass --resume to continue it, or choose another "
                                       f"--out\n")


def test_specs_that_cannot_be_trained_are_refused_at_their_line(tmp_path, folder, capsys):
    cases = {
        "none.yaml": ("name: flat\ninput: {shape: [16, 16, 3]}\nblocks: [[8, max]]\n"
                      "head: {type: none}\n",
                      "none.yaml:4:14: $.head.type: head type none has no predictions layer "
                      "to train; use dense, global_avg or global_max with classes"),
        "open.yaml": ("name: any_size\ninput: {shape: [null, null, 3]}\nblocks: [[8, max]]\n"
                      "head: {type: global_avg, classes: 3}\n",
                      "open.yaml:2:16: $.input.shape: training needs a fixed input size, got "
                      "?x?x3"),
    }
    for name, (text, expected) in cases.items():
        (tmp_path / name).write_text(text)
        assert cli.main(["train", str(tmp_path / name), "--data", str(folder), "--out",
                         str(tmp_path / "run")]) == 1
        assert capsys.readouterr().err.strip() == expected.replace(name, str(tmp_path / name))


def test_classes_from_data_sets_the_head_and_a_global_head_without_classes_gets_them(
        folder, tmp_path):
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text(TINY.replace("classes: 3", "classes: 5"))
    prepared = training.prepare(wrong, folder, tmp_path / "a", classes_from_data=True)
    assert prepared.spec.head.classes == 3
    bare = tmp_path / "bare.yaml"
    bare.write_text(TINY.replace(", classes: 3", ""))
    assert training.prepare(bare, folder, tmp_path / "b").spec.head.classes == 3


def test_unreadable_images_are_skipped_and_listed_at_the_end(tmp_path, spec_file, capsys):
    data = make_folder(tmp_path / "data", per_class=4)
    (data / "red" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code = cli.main(["train", str(spec_file), "--data", str(data), "--out",
                     str(tmp_path / "run"), "--epochs", "1", "--val-split", "0"])
    assert code == 2
    out, err = capsys.readouterr()
    err = err.splitlines()
    assert err[-2:] == [f"skipped: {data / 'red' / 'broken.png'}: not an image Pillow can "
                        f"read", "1 image could not be read and was skipped"]
    assert out.splitlines()[1] == ("data: 12 training and 0 validation images (1 unreadable, "
                                   "skipped), 3 classes; preprocessing caffe, crop")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["set"] == "training" and metrics["images"] == 12


# --- the data pipeline ----------------------------------------------------------------

def test_scan_and_split_are_sorted_stratified_and_seeded(folder):
    found = scan_folder(folder)
    assert found.class_names == ("blue", "green", "red") and found.counts() == [10, 10, 10]
    train_a, val_a = split(found, 0.2, seed=1)
    train_b, val_b = split(found, 0.2, seed=1)
    assert np.array_equal(val_a, val_b) and len(val_a) == 6 and len(train_a) == 24
    assert np.bincount(np.asarray(found.labels)[val_a]).tolist() == [2, 2, 2]
    assert set(train_a).isdisjoint(val_a)
    assert not np.array_equal(split(found, 0.2, seed=2)[1], val_a)
    assert len(split(found, 0.0, seed=1)[1]) == 0


def test_batches_hold_exactly_what_features_prepares(folder):
    found = scan_folder(folder)
    files = list(found.files[:5])
    decoded = decode(files, 3, (16, 16), "crop")
    expected = np.stack([preprocess(load_image(f, 3, (16, 16), "crop"), "torch")
                         for f in files])
    x, y = next(iter(batches(decoded.images, np.arange(5) % 3, 3, 5, "torch")))
    np.testing.assert_allclose(x.numpy(), expected, rtol=0, atol=2e-6)
    assert y.numpy().argmax(axis=1).tolist() == [0, 1, 2, 0, 1]


def test_each_epoch_is_a_seeded_permutation_and_augmentation_is_reproducible(folder):
    import tensorflow as tf

    from vggspec.spec_types import Augment

    images = decode(list(scan_folder(folder).files), 3, (16, 16)).images
    labels = np.arange(len(images)) % 3
    epoch = tf.Variable(0, dtype=tf.int64)
    augment = Augment(flip=True, crop=True, crop_scale=0.5)

    def one_epoch(seed: int, number: int):
        epoch.assign(number)
        dataset = batches(images, labels, 3, 7, "none", seed=seed, epoch=epoch,
                          augment=augment)
        xs, ys = zip(*[(x.numpy(), y.numpy()) for x, y in dataset])
        return np.concatenate(xs), np.concatenate(ys)

    first, labels_first = one_epoch(3, 0)
    again, _ = one_epoch(3, 0)
    second, labels_second = one_epoch(3, 1)
    assert first.shape == (30, 16, 16, 3)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, second)
    assert sorted(labels_first.argmax(1)) == sorted(labels_second.argmax(1)) == sorted(labels)
    assert first.min() >= 0 and first.max() <= 255 and first.std() > 1


# --- several machines ---------------------------------------------------------------

WORKER = """
import hashlib, sys
import numpy as np
from vggspec import training
result = training.train(sys.argv[1], sys.argv[2], sys.argv[3], epochs=1)
weights = b"".join(np.asarray(v.numpy()).tobytes() for v in result.model.weights)
print("weights", hashlib.sha256(weights).hexdigest(), len(result.model.weights))
"""


def free_ports(count: int) -> list[int]:
    import socket

    sockets = [socket.socket() for _ in range(count)]
    for handle in sockets:
        handle.bind(("127.0.0.1", 0))
    ports = [handle.getsockname()[1] for handle in sockets]
    for handle in sockets:
        handle.close()
    return ports


def test_two_workers_on_this_machine_train_to_identical_weights_and_only_the_chief_writes(
        folder, spec_file, tmp_path):
    """MultiWorkerMirroredStrategy through TF_CONFIG, with batch norm synchronised: the
    weights after one epoch, moving statistics included, agree bit for bit."""
    ports = free_ports(2)
    workers = [f"127.0.0.1:{port}" for port in ports]
    processes = []
    for index in range(2):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(config)}
        processes.append(subprocess.Popen(
            [sys.executable, "-c", WORKER, str(spec_file), str(folder),
             str(tmp_path / f"run{index}")], cwd=ROOT, env=env, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=240))
    finally:
        for process in processes:  # a worker whose peer died waits forever otherwise
            process.kill()
    for process, (out, err) in zip(processes, outputs):
        assert process.returncode == 0, err[-2000:]
    chief, worker = (out.splitlines() for out, _ in outputs)
    assert chief[0] == "devices: 2 replicas on 2 workers"
    assert chief[-1].startswith("weights ") and chief[-1].endswith(" 14")  # 2 convs, 2 batch norms, predictions
    assert worker == [chief[-1]]  # the worker prints nothing but its weights
    assert sorted(p.name for p in (tmp_path / "run0").iterdir()) == sorted(
        ["best.keras", "last.keras", "history.csv", "curves.png", "confusion.png",
         "metrics.json", "spec.yaml", "state.json", "logs"])
    assert not (tmp_path / "run1").exists()


def test_a_tf_config_that_is_not_json_is_one_line(spec_file, folder, tmp_path, monkeypatch,
                                                  capsys):
    monkeypatch.setenv("TF_CONFIG", "{oops")
    assert cli.main(["train", str(spec_file), "--data", str(folder), "--out",
                     str(tmp_path / "run")]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "TF_CONFIG is not JSON (Expecting property name enclosed in double quotes: line 1 "
        "column 2 (char 1)); see the README's Training on several machines")


# --- the train section of a spec ------------------------------------------------------

def test_the_train_section_is_checked_at_its_lines_and_merged_by_extends(tmp_path):
    base = tmp_path / "base.yaml"
    base.write_text(TINY.replace("train: {epochs: 3, batch_size: 8, learning_rate: 0.01}",
                                 "train:\n  epochs: 3\n  augment: {flip: true}\n"))
    child = tmp_path / "child.yaml"
    child.write_text("extends: ./base.yaml\ntrain:\n  optimizer: sgd\n  augment: {crop: true}\n")
    spec = vggspec.load_spec(child)
    assert (spec.train.epochs, spec.train.optimizer) == (3, "sgd")
    assert (spec.train.augment.flip, spec.train.augment.crop) == (True, True)
    assert spec.train.learning_rate == 0.001 and spec.train.momentum == 0.9  # schema defaults
    assert vggspec.load_spec(spec_file_text(tmp_path, TINY.replace(
        "train: {epochs: 3, batch_size: 8, learning_rate: 0.01}\n", ""))).train is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(TINY.replace("batch_size: 8", "batch_size: 0, optimizer: lion"))
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.plan(bad)
    assert [str(issue) for issue in caught.value.issues] == [
        f"{bad}:8:32: $.train.batch_size: must be at least 1, got 0",
        f"{bad}:8:46: $.train.optimizer: must be one of adamw, sgd, adam, got 'lion'"]


def spec_file_text(folder: Path, text: str) -> Path:
    path = folder / "plain.yaml"
    path.write_text(text)
    return path


def test_flags_override_the_spec_and_the_resolved_spec_records_them(spec_file, folder,
                                                                      tmp_path):
    prepared = training.prepare(spec_file, folder, tmp_path / "run", epochs=7, seed=9,
                                optimizer="sgd", preprocess="tf")
    assert (prepared.settings.epochs, prepared.settings.seed, prepared.settings.optimizer,
            prepared.settings.batch_size) == (7, 9, "sgd", 8)
    assert prepared.spec.to_dict()["train"]["preprocess"] == "tf"
    with pytest.raises(TypeError, match="unknown training settings: colour"):
        training.settings_for(prepared.spec, colour="red")


def test_ctrl_c_while_an_epoch_is_written_waits_until_its_files_are_all_written():
    written = []
    with pytest.raises(KeyboardInterrupt):
        with training._interrupts_deferred():
            os.kill(os.getpid(), signal.SIGINT)
            written.append("every file of the epoch")
    assert written == ["every file of the epoch"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_the_readme_train_block_shows_the_schema_defaults():
    import re

    import yaml

    from vggspec.spec_types import Train

    readme = (ROOT / "README.md").read_text()
    block = re.search(r"```yaml\n(train:\n.*?)```", readme, re.S).group(1)
    shown = yaml.safe_load(block)["train"]
    assert shown == {key: value for key, value in Train().to_dict().items()
                     if key != "preprocess"}
    assert "# preprocess:" in block


def test_mixed_precision_trains_with_float32_predictions_and_restores_the_policy(
        folder, spec_file, tmp_path):
    import keras

    result = training.train(spec_file, folder, tmp_path / "run", epochs=1,
                            precision="bfloat16", log=lambda line: None)
    model = result.model
    assert model.get_layer("block1_conv1").dtype_policy.name == "mixed_bfloat16"
    assert model.get_layer("predictions").dtype_policy.name == "float32"
    assert np.isfinite(result.history[0]["loss"])
    assert keras.config.dtype_policy().name == "float32"



def test_a_damaged_or_foreign_run_state_is_refused_in_one_line(finished, folder, tmp_path,
                                                               capsys):
    import shutil

    result, _ = finished
    state = json.loads((result.run / "state.json").read_text())
    cases = {
        "not a mapping": [1, 2],
        "epochs as text": {**state, "epochs_done": "3"},
        "history short": {**state, "history": state["history"][:1]},
        "best not a number": {**state, "best": "a"},
        "deep": "DEEP",
    }
    for name, content in cases.items():
        run = tmp_path / name.replace(" ", "_")
        shutil.copytree(result.run, run)
        text = "[" * 100000 + "]" * 100000 if content == "DEEP" else json.dumps(content)
        (run / "state.json").write_text(text)
        assert cli.main(["train", str(run / "spec.yaml"), "--data", str(folder), "--out",
                         str(run), "--resume", "--epochs", "5"]) == 2, name
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"{run / 'state.json'}: "), (name, err)
    run = tmp_path / "stale"
    shutil.copytree(result.run, run)
    stale = {**state, "epochs_done": 2, "history": state["history"][:2]}
    (run / "state.json").write_text(json.dumps(stale))
    assert cli.main(["train", str(run / "spec.yaml"), "--data", str(folder), "--out",
                     str(run), "--resume", "--epochs", "5"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{run}: last.keras holds epoch 3 but state.json says 2: the run stopped while "
        f"writing an epoch's files; it cannot be resumed exactly")


def test_a_model_that_does_not_match_its_vggspec_json_is_refused(finished, folder, tmp_path,
                                                                 capsys):
    import zipfile

    result, _ = finished
    forged = tmp_path / "forged.keras"
    with zipfile.ZipFile(result.run / "best.keras") as source, \
            zipfile.ZipFile(forged, "w") as target:
        for item in source.namelist():
            data = source.read(item)
            if item == "vggspec.json":
                info = json.loads(data)
                data = json.dumps({**info, "input_shape": [20, 20, 3]}).encode()
            target.writestr(item, data)
    assert cli.main(["evaluate", str(forged), "--data", str(folder)]) == 2
    assert capsys.readouterr().err == (
        f"forged.keras on tensorflow, CPU\n{forged}: the model takes (16, 16, 3) and gives 3 "
        f"outputs, but its vggspec.json says (20, 20, 3) and 3 classes\n")


def test_cache_limits_refuse_large_sets_and_zero_means_none(spec_file, folder, tmp_path,
                                                            capsys):
    assert cli.main(["train", str(spec_file), "--data", str(folder), "--out",
                     str(tmp_path / "run"), "--max-cache-gib", "0.00001"]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        f"{folder}: 30 images of 16x16x3 need 0.0 GiB decoded, over the 0.0 GiB limit "
        f"(--max-cache-gib); decoding while streaming is not built yet")
    for limit in (0, None):
        assert training.prepare(spec_file, folder, tmp_path / "a", max_cache_bytes=limit)
    with pytest.raises(vggspec.InputError, match="over the 0.0 GiB limit"):
        training.prepare(spec_file, folder, tmp_path / "a", max_cache_bytes=1000)


def test_outputs_that_are_not_finite_are_one_line(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((2, 2, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(2, activation="softmax")], name="diverged")
    model.layers[-1].set_weights([np.full((4, 2), np.nan, "f4"), np.zeros(2, "f4")])
    with pytest.raises(vggspec.InputError, match="^diverged: the model's outputs are not "
                                                 "finite numbers: training diverged"):
        training.predict(model, np.zeros((3, 2, 2, 1), np.uint8), "none")


@pytest.mark.parametrize("config", [
    '{"cluster": {"worker": "127.0.0.1:1"}, "task": {"type": "worker", "index": 0}}',
    '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": "a"}}',
    '[1]'])
def test_tf_config_values_of_the_wrong_kind_are_one_line(config, monkeypatch):
    from vggspec.distribute import is_chief

    monkeypatch.setenv("TF_CONFIG", config)
    with pytest.raises(vggspec.UsageError, match="^TF_CONFIG must be a JSON object: a "
                                                 "cluster mapping task types"):
        is_chief()

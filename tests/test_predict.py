"""`vggspec predict`: top classes from a trained model and from a spec, class names from
every source, Grad-CAM pictures, and one line for every bad input."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import vggspec
from test_training import TINY, make_folder
from vggspec import cli, training
from vggspec.predict import (Source, check_source, class_index, imagenet_classes,
                             load_model, predict, read_labels)
from vggspec.errors import InputError, UsageError
from vggspec.render import BAR_MARGIN, BAR_WIDTH, GAP, TITLE_HEIGHT, colormap


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny model trained by vggspec train on red, green and blue noise, and images."""
    root = tmp_path_factory.mktemp("predict")
    data = make_folder(root / "colours", per_class=8)
    spec = root / "tiny.yaml"
    spec.write_text(TINY)
    training.train(spec, data, root / "run", log=lambda line: None)
    return root / "run", data, spec


def run(capsys, *args: str) -> tuple[int, list[str], list[str]]:
    code = cli.main(list(args))
    out, err = capsys.readouterr()
    return code, out.splitlines(), err.splitlines()


def test_imagenet_names_are_package_data_in_output_order():
    classes = imagenet_classes()
    assert len(classes) == 1000 and len({wnid for wnid, _ in classes}) == 1000
    assert classes[0] == ("n01440764", "tench")
    assert classes[281] == ("n02123045", "tabby")
    assert classes[999] == ("n15075141", "toilet_tissue")
    assert [wnid for wnid, _ in classes] == sorted(wnid for wnid, _ in classes)
    source = check_source(vggspec.plan("archs/vgg16.yaml"))
    assert source.names_from == "ImageNet" and source.class_names[1] == "goldfish"
    assert class_index(source, "tabby") == 281
    assert class_index(source, "n01443537") == 1
    assert class_index(source, "517") == 517
    with pytest.raises(UsageError) as error:
        class_index(source, "crane")
    assert str(error.value) == ("class 'crane' is the name of outputs 134 and 517; give the "
                                "number instead")


def test_a_trained_model_predicts_its_classes_with_probabilities_in_order(trained, capsys):
    run_folder, data, _ = trained
    source = check_source(run_folder)
    assert source.class_names == ("blue", "green", "red")
    assert (source.names_from, source.preprocess, source.resize) == ("the model", "caffe",
                                                                       "crop")
    images = [data / colour / "0.png" for colour in ("red", "green", "blue")]
    report = predict(source, load_model(source), images, top=3)
    assert report.failed == []
    for prediction in report.predictions:
        assert prediction.probabilities.sum() == pytest.approx(1.0, abs=1e-6)
        probabilities = [p for _, _, p in prediction.top]
        assert probabilities == sorted(probabilities, reverse=True)
        assert [index for index, _, _ in prediction.top] == list(
            np.argsort(-prediction.probabilities)[:3])
    assert [p.top[0][1] for p in report.predictions] == ["red", "green", "blue"]

    code, out, err = run(capsys, "predict", str(run_folder), str(data / "red"), "--top", "2")
    assert code == 0
    assert err == ["run on tensorflow, CPU"] + [f"{n}/8 images" for n in (8,)]
    assert len(out) == 8
    for line, index in zip(out, range(8)):
        path, classes = line.split(": ")
        assert path == str(data / "red" / f"{index}.png")
        names = [entry.rsplit(" ", 1)[0] for entry in classes.split(", ")]
        assert len(names) == 2 and names[0] == "red"


def test_grad_cam_pictures_one_per_image_with_a_colour_bar(trained, tmp_path, capsys):
    run_folder, data, _ = trained
    out = tmp_path / "cams"
    code, lines, err = run(capsys, "predict", str(run_folder / "best.keras"),
                           str(data / "green" / "1.png"), str(data / "blue" / "1.png"),
                           "--cam", "--out", str(out), "--class", "green", "--top", "1")
    assert code == 0, err
    assert err[-1] == f"wrote 2 Grad-CAM pictures (block2_conv1) to {out}/"
    assert sorted(p.name for p in out.iterdir()) == ["1.png", "1_2.png"]
    for picture in out.iterdir():
        pixels = np.asarray(Image.open(picture).convert("RGB")).astype(int)
        assert pixels.shape == (TITLE_HEIGHT + 320 + 2 * GAP, 2 * 320 + 3 * GAP + BAR_MARGIN
                                + BAR_WIDTH + 60, 3)
        bar = pixels[TITLE_HEIGHT + GAP:TITLE_HEIGHT + GAP + 320,
                     2 * 320 + 3 * GAP + BAR_MARGIN + BAR_WIDTH // 2]
        jet = colormap("jet").astype(int)
        levels = [int(np.abs(jet - colour).sum(axis=1).argmin()) for colour in bar]
        assert levels[0] == 255 and levels[-1] == 0
        assert all(a >= b for a, b in zip(levels, levels[1:]))   # a monotone ramp


def test_labels_files_and_spec_sources(tmp_path, write):
    spec = write("small.yaml", TINY)
    labels = write("labels.txt", "cat\n\n  dog  \nbird\n")
    source = check_source(vggspec.plan(spec), labels=labels)
    assert source.class_names == ("cat", "dog", "bird")
    assert source.names_from == "labels file"
    assert check_source(vggspec.plan(spec)).class_names == ("class 0", "class 1", "class 2")
    assert read_labels(labels) == ["cat", "dog", "bird"]


def test_every_bad_input_is_one_line_and_exit_2(trained, tmp_path, write, capsys):
    run_folder, data, spec = trained
    image = str(data / "red" / "0.png")

    def refused(*args: str) -> str:
        code, out, err = run(capsys, "predict", *args)
        assert (code, out, len(err)) == (2, [], 1), (code, out, err)
        return err[0]

    assert refused(str(spec), image, "--labels", str(tmp_path / "none.txt")) == \
        f"{tmp_path / 'none.txt'}: no such file"
    four = write("four.txt", "a\nb\nc\nd\n")
    assert refused(str(spec), image, "--labels", str(four)) == \
        f"{four}: 4 class names, but the model has 3 outputs (one name per line, in output " \
        f"order)"
    twice = write("twice.txt", "a\nb\na\n")  # a repeated name is allowed, as in ImageNet's
    assert refused(str(spec), image, "--labels", str(twice), "--cam", "--class", "a") == \
        "class 'a' is the name of outputs 0 and 2; give the number instead"
    assert refused(str(spec), image, "--cam", "--class", "²") == \
        "'²' is not a class of tiny (3 classes, names from output numbers; an output number " \
        "0-2 works too)"
    assert refused(str(run_folder), image, "--cam", "--class", "purple") == \
        "'purple' is not a class of run (3 classes, names from the model; an output number " \
        "0-2 works too)"
    assert refused(str(run_folder), image, "--cam", "--class", "3") == \
        "output number 3 is out of range: run has outputs 0 to 2"
    assert refused(str(spec), image, "--cam", "--cam-layer", "block1_pool") == \
        "--cam-layer 'block1_pool' is not a convolution layer; the convolution before it is " \
        "'block1_conv1' (2 convolutions: 'block1_conv1' and 'block2_conv1')"
    assert refused(str(run_folder), image, "--cam", "--cam-layer", "predictions").startswith(
        "--cam-layer 'predictions' is not a convolution layer")
    assert refused(str(run_folder), image, "--weights", "imagenet") == \
        f"{run_folder} is a trained model, which carries its weights; --weights is for specs"
    assert refused(str(spec), image, "--class", "class 1") == \
        "--class is about the Grad-CAM map: add --cam"
    assert refused(str(spec), image, "--cam-layer", "block1_conv1") == \
        "--cam-layer is about the Grad-CAM map: add --cam"
    leftover = tmp_path / "leftover"
    assert refused(str(spec), image, "--cam", "--out", str(leftover), "--weights",
                   str(tmp_path / "missing.h5")) == f"{tmp_path / 'missing.h5'}: no such file"
    assert not leftover.exists()
    assert refused(str(spec), str(tmp_path / "missing.jpg")) == \
        f"{tmp_path / 'missing.jpg'}: no such file"
    assert refused(str(tmp_path / "nothing.keras"), image) == \
        f"{tmp_path / 'nothing.keras'}: no such model file (give a spec, a run folder or " \
        f"a .keras file written by vggspec train)"
    base = write("base.yaml", TINY.replace("{type: global_avg, classes: 3}", "{type: none}")
                 .replace("train: {epochs: 3, batch_size: 8, learning_rate: 0.01}\n", ""))
    code, out, err = run(capsys, "predict", str(base), image)
    assert code == 1 and err[0].startswith(f"{base}:") and err[0].endswith(
        "$.head.type: head 'none' has no classifier (predictions layer), so there is "
        "nothing to predict; use features or embed")


def test_unreadable_images_are_skipped_and_listed(trained, tmp_path, capsys):
    run_folder, data, _ = trained
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, out, err = run(capsys, "predict", str(run_folder), str(data / "red" / "0.png"),
                         str(broken))
    assert code == 2
    assert len(out) == 1 and out[0].startswith(str(data / "red" / "0.png") + ": red ")
    assert err[-2].startswith(f"skipped: {broken}: ")
    assert err[-1] == "1 image could not be read and was skipped"


def test_an_image_listed_twice_is_predicted_once(trained, tmp_path, capsys):
    run_folder, data, _ = trained
    red = str(data / "red" / "0.png")
    code, out, err = run(capsys, "predict", str(run_folder), red, red, "--cam", "--out",
                         str(tmp_path / "cams"))
    assert code == 0 and len(out) == 1
    assert f"warning: {red}: listed twice; processed once" in err
    assert [p.name for p in (tmp_path / "cams").iterdir()] == ["0.png"]


def test_a_folder_is_a_run_only_when_it_holds_best_keras(trained, tmp_path, monkeypatch):
    import argparse

    run_folder, _, _ = trained
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vgg11").mkdir()  # say, what `export --out vgg11` leaves
    args = argparse.Namespace(source="vgg11", weights=None)
    argument, model_file = cli._model_or_spec(args)
    assert model_file is False and argument.endswith("vgg11.yaml")
    args = argparse.Namespace(source=str(run_folder), weights=None)
    assert cli._model_or_spec(args) == (str(run_folder), True)

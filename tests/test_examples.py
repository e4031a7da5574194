"""The examples run and produce what they promise."""

from __future__ import annotations

import subprocess
import sys

from PIL import Image

from conftest import ROOT


def run_example(name: str, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, str(ROOT / "examples" / name), *args],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result


def test_reproduce_writeup(tmp_path):
    lines = run_example("reproduce_writeup.py", "--out", str(tmp_path)).stdout.splitlines()
    assert lines[:6] == ["Input image: (224, 224, 3)",
                         "Feature map after block1: TensorShape([1, 112, 112, 64])",
                         "Feature map after block2: TensorShape([1, 56, 56, 128])",
                         "Feature map after block3: TensorShape([1, 28, 28, 256])",
                         "Feature map after block4: TensorShape([1, 14, 14, 512])",
                         "Feature map after block5: TensorShape([1, 7, 7, 512])"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "block1.png", "block2.png", "block3.png", "block4.png", "block5.png", "input.png",
        "overview.png"]
    with Image.open(tmp_path / "input.png") as image:
        assert image.size == (224, 224)


def test_variant_by_extends(tmp_path):
    out = run_example("variant_by_extends.py", "--out", str(tmp_path)).stdout
    assert "vgg16: input (224, 224, 3)" in out and "vgg16_small_gap: input (64, 64, 3)" in out
    assert "parameters:  138,357,544" in out and "parameters:  10,537,280" in out
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "vgg16.png", "vgg16_small_gap.png", "vgg16_small_gap.yaml"]


def test_filter_visualisation(tmp_path):
    out = tmp_path / "f.png"
    lines = run_example("filter_visualisation.py", "--count", "3", "--size", "32",
                        "--steps", "3", "--out", str(out)).stdout.splitlines()
    assert len(lines) == 4 and lines[-1].startswith(f"wrote {out} (3 filters in ")
    rises = [line.split() for line in lines[:3]]
    assert [row[1] for row in rises] == ["0:", "1:", "2:"]
    assert all(float(row[-1]) > float(row[-3]) for row in rises)  # the ascent climbed
    from PIL import Image

    with Image.open(out) as picture:
        assert picture.size == (320, 28 + 2 * 130 + 2)


def test_perceptual_loss():
    lines = run_example("perceptual_loss.py").stdout.splitlines()
    assert lines[0].split() == ["tap", "shape", "blurred", "shifted"]
    rows = [line.split() for line in lines[1:]]
    assert [row[0] for row in rows] == ["block1_conv2", "block2_conv2", "block3_conv3",
                                        "block4_conv3"]
    assert all(float(row[-1]) > 0 and float(row[-2]) > 0 for row in rows)


def test_train_digits_learns_real_digits_in_three_epochs(tmp_path):
    """The issue's target (97% in the spec's 12 epochs) is shown in the README; here 3
    epochs must already pass 90% on the 359 held-out digits."""
    import json

    out = tmp_path / "digits"
    lines = run_example("train_digits.py", "--out", str(out), "--epochs", "3").stdout
    lines = lines.splitlines()
    assert lines[0] == f"wrote 1,797 digits to {tmp_path / 'digits-images'}/"
    assert lines[1].startswith("$ vggspec train ") and lines[1].endswith(" --epochs 3")
    assert [len(list((tmp_path / "digits-images" / str(d)).iterdir())) for d in range(10)] \
        == [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["images"] == 359 and metrics["accuracy"] >= 0.9
    assert lines[-1] == (f"validation accuracy {metrics['accuracy']:.4f} on 359 digits "
                         f"(best epoch {metrics['epoch']})")

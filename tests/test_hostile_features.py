"""`vggspec features` and hostile inputs: special files as images, image names that try to
escape or hide in the output folder, names that collide, output folders that cannot be
made, images too small or too large for the spec, and Ctrl-C at any moment. Each family
is tested with more cases than the one that was reported."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent import futures
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

import vggspec
from conftest import ROOT, run_cli
from vggspec import pipeline
from vggspec.features import list_images, load_image
from vggspec.pipeline import extract_features, folder_names, safe_name
from vggspec.plan import MIB, smallest_input

TINY = ("name: tiny\ninput: {shape: [32, 32, 3]}\nblocks: [[4, max], [{filters: 9, "
        "batch_norm: true}, max]]\nhead: {type: global_avg}\n")
OPEN = TINY.replace("[32, 32, 3]", "[null, null, 3]")
PICTURES = ["block1.png", "block2.png", "overview.png"]


def picture(path: Path, size=(40, 30), colour=(10, 200, 30)) -> Path:
    """A small RGB PNG (``size`` is width, height, as Pillow has it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path, format="PNG")
    return path


def entries(root: Path) -> list[str]:
    """Everything under ``root`` (hidden entries too), as sorted relative paths."""
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def check_out(out: Path, report, others: tuple[str, ...] = ()) -> None:
    """The report agrees with the disk: ``done`` lists exactly the image folders in
    ``out`` (besides ``others``), each directly inside it, whole, not hidden, and no
    temporary folder is left."""
    folders = [folder for _, folder in report.done]
    assert len(set(folders)) == len(folders)
    assert sorted(p.name for p in out.iterdir() if p.name not in others) == \
        sorted(folder.name for folder in folders)
    for folder in folders:
        assert folder.resolve().parent == out.resolve()
        assert not folder.name.startswith(".")
        assert sorted(p.name for p in folder.iterdir()) == PICTURES
    assert not list(out.rglob("*.tmp-*"))


@pytest.fixture
def special(tmp_path, monkeypatch):
    """A FIFO, a socket and a device, each named like an image."""
    folder = tmp_path / "special"
    folder.mkdir()
    os.mkfifo(folder / "pipe.png")
    monkeypatch.chdir(folder)  # a socket's path must be short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.png")
    yield {"fifo": (folder / "pipe.png", "a named pipe (FIFO)"),
           "socket": (folder / "sock.png", "a socket"),
           "device": (Path("/dev/zero"), "a character device")}
    sock.close()


def refusal(path: Path, words: str) -> str:
    return rf"{re.escape(str(path))}: is {re.escape(words)}, not an image; only regular " \
           rf"files are read"


def in_thread(function, *args, seconds: float = 20):
    """Call ``function`` in a daemon thread: a call that hangs fails the test, not the run."""
    outcome = {}

    def target():
        try:
            outcome["value"] = function(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{function.__name__}{args} hung"
    return outcome


# --- special files as images -----------------------------------------------------------

@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_a_listed_special_file_is_refused_by_list_images(special, kind):
    path, words = special[kind]
    outcome = in_thread(list_images, [path])
    assert isinstance(outcome.get("error"), vggspec.InputError)
    assert re.fullmatch(refusal(path, words), str(outcome["error"]))


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_load_image_refuses_special_files_without_hanging(special, kind):
    path, words = special[kind]
    outcome = in_thread(load_image, path)
    assert isinstance(outcome.get("error"), vggspec.InputError)
    assert re.fullmatch(refusal(path, words), str(outcome["error"]))


def test_load_image_hands_pillow_an_open_regular_file(tmp_path, monkeypatch):
    opened = []
    real_open = Image.open

    def spy(source, *args, **kwargs):
        opened.append(source)
        return real_open(source, *args, **kwargs)

    monkeypatch.setattr(Image, "open", spy)
    assert load_image(picture(tmp_path / "a.png")).shape == (30, 40, 3)
    assert len(opened) == 1
    assert hasattr(opened[0], "read") and not isinstance(opened[0], (str, os.PathLike))
    assert opened[0].closed


def test_folders_skip_special_files_and_links_to_them(special, tmp_path):
    folder = special["fifo"][0].parent
    picture(folder / "real.png")
    (folder / "zero.png").symlink_to("/dev/zero")
    (folder / "to-pipe.png").symlink_to(folder / "pipe.png")
    (folder / "broken.png").symlink_to(folder / "nowhere.png")
    (folder / "folder.png").mkdir()
    assert in_thread(list_images, [folder])["value"] == [folder / "real.png"]


def test_only_special_files_in_a_folder_is_a_folder_with_no_images(special):
    folder = special["fifo"][0].parent
    with pytest.raises(vggspec.InputError) as caught:
        list_images([folder])
    assert str(caught.value).startswith(f"{folder}: folder has no images (.jpg, ")


def test_an_unreadable_folder_is_one_line(tmp_path, monkeypatch):
    def refuse(self):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(Path, "iterdir", refuse)  # root may read any folder
    with pytest.raises(vggspec.InputError) as caught:
        list_images([tmp_path])
    assert str(caught.value) == f"{tmp_path}: cannot read the folder: Permission denied"


def test_special_files_on_the_command_line_fail_before_the_model(special, tmp_path):
    for kind in ("fifo", "socket", "device"):
        path, words = special[kind]
        result = run_cli("features", str(tmp_path / "tiny.yaml"), str(path), "--out",
                         str(tmp_path / "out"), timeout=60)
        # Refused before the spec is even read (tiny.yaml does not exist).
        assert result.returncode == 2 and result.stdout == ""
        assert re.fullmatch(refusal(path, words) + "\n", result.stderr)
        assert not (tmp_path / "out").exists()


# --- folder names: safe, inside --out, distinct -----------------------------------------

@pytest.mark.parametrize("stem, name", [
    ("..", "image"), (".", "image"), ("", "image"), ("...", "image"), (" . ", "image"),
    (".hidden", "hidden"), ("..\\..\\x", "_.._x"), ("../../etc", "_.._etc"),
    ("a\\b", "a_b"), ("new\nline", "new_line"), ("\x1b[31mred", "__31mred"),
    ("\u202egnp.exe", "_gnp.exe"), ("nul\x00byte", "nul_byte"), ("tab\there", "tab_here"),
    ("café", "café"), (" spaced out ", "spaced out"), ("a:b*c?", "a_b_c_"),
    ("name.", "name"), ("x" * 300, "x" * 100), ("é" * 80, "é" * 50),
    ("a" + "é" * 60, "a" + "é" * 49),  # never half a character
])
def test_safe_name(stem, name):
    assert safe_name(stem) == name


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_any_stem_gives_a_plain_visible_short_name(stem):
    name = safe_name(stem)
    assert name and name not in (".", "..") and not name.startswith((".", " "))
    assert Path(name).name == name and not set(name) & set("/\\\x00\n\r\x1b")
    assert name.isprintable() and len(name.encode()) <= pipeline.MAX_FOLDER_NAME_BYTES


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["cat", "Cat", "CAT", "cat_2", "cat_3", "Cat_2", "..", "",
                                 "image", "image_2", "dog"]), max_size=12))
def test_folder_names_are_distinct_ignoring_case_and_deterministic(stems):
    images = [Path(f"d{index}") / f"{stem}.png" for index, stem in enumerate(stems)]
    names = folder_names(images)
    assert len({name.casefold() for name in names}) == len(names)
    assert folder_names(images) == names
    natural = [safe_name(image.stem).casefold() for image in images]
    for index, name in enumerate(names):
        if name.casefold() == natural[index]:  # the first image with this name keeps it
            assert natural.index(natural[index]) == index
        else:  # a numbered name is never another image's own name
            assert name.casefold() not in natural


@pytest.mark.parametrize("paths, names", [
    (["s1/cat.png", "s2/cat.png", "s3/cat_2.png"], ["cat", "cat_3", "cat_2"]),
    (["a/Cat.png", "b/cat.jpg", "c/CAT.gif"], ["Cat", "cat_2", "CAT_3"]),
    (["...png", "..png", "x/image.png", "y/.png"], ["image", "image_2", "image_3", "png"]),
    (["a/x.png", "b/x_2.png", "c/x_3.png", "d/x.png"], ["x", "x_2", "x_3", "x_4"]),
])
def test_folder_names(paths, names):
    assert folder_names([Path(p) for p in paths]) == names


def test_hostile_image_names_stay_inside_out_and_visible(tmp_path):
    images = tmp_path / "in"
    stems = {"...": "image", "..": "image_2", ".png": "png", "a\\b": "a_b",
             "new\nline": "new_line", "\x1b[31mred": "__31mred", "x" * 240: "x" * 100,
             ".hidden": "hidden", "café": "café", "-rf": "-rf"}
    paths = [picture(images / (stem if stem == ".png" else f"{stem}.png")) for stem in stems]
    before = entries(tmp_path)
    out = tmp_path / "out"
    report = extract_features(vggspec.spec_from_text(TINY), paths, out)
    assert report.failed == [] and report.warnings == []
    assert [(path, folder.name) for path, folder in report.done] == \
        list(zip(paths, stems.values()))
    check_out(out, report)
    assert [p for p in entries(tmp_path) if not p.startswith("out")] == before


def test_same_stems_get_their_own_folders_and_one_file_is_done_once(tmp_path):
    cats = [picture(tmp_path / folder / name, colour=(60 * index, 0, 0))
            for index, (folder, name) in enumerate([("s1", "cat.png"), ("s2", "cat.png"),
                                                    ("s3", "cat_2.png"), ("s4", "CAT.png")])]
    link, hard = tmp_path / "link.png", tmp_path / "hard.png"
    link.symlink_to(cats[0])
    os.link(cats[1], hard)
    again = tmp_path / "s2" / ".." / "s1" / "cat.png"
    out = tmp_path / "out"
    report = extract_features(vggspec.spec_from_text(TINY),
                              [*cats, cats[0], again, link, hard], out, npz=True)
    assert [(path, folder.name) for path, folder in report.done] == \
        list(zip(cats, ["cat", "cat_3", "cat_2", "CAT_4"]))
    assert report.warnings == [
        f"{cats[0]}: listed twice; processed once",
        f"{again}: the same file as {cats[0]}; processed once",
        f"{link}: the same file as {cats[0]}; processed once",
        f"{hard}: the same file as {cats[1]}; processed once"]
    arrays = [np.load(folder / "features.npz")["block1"] for _, folder in report.done]
    assert all(not np.array_equal(arrays[i], arrays[j]) for i in range(4) for j in range(i))


# --- output folders that cannot be made -------------------------------------------------

def test_a_blocked_folder_fails_that_image_only(tmp_path):
    images = [picture(tmp_path / "in" / f"{name}.png", colour=colour) for name, colour in
              [("blocked", (255, 0, 0)), ("linked", (0, 255, 0)), ("again", (0, 0, 255)),
               ("fresh", (9, 9, 9))]]
    out, outside = tmp_path / "out", tmp_path / "outside"
    out.mkdir()
    outside.mkdir()
    (out / "blocked").write_text("keep me")
    (out / "linked").symlink_to(outside)  # writing through it would leave --out
    (out / "again").mkdir()  # from an earlier run: replaced whole
    (out / "again" / "stale.txt").write_text("old")
    report = extract_features(vggspec.spec_from_text(TINY), images, out)
    assert report.failed == [
        (images[0], f"{images[0]}: cannot write {out}/blocked/: something that is not a "
                    f"folder is in the way"),
        (images[1], f"{images[1]}: cannot write {out}/linked/: something that is not a "
                    f"folder is in the way")]
    assert [path for path, _ in report.done] == images[2:]
    check_out(out, report, others=("blocked", "linked"))
    assert (out / "blocked").read_text() == "keep me"
    assert (out / "linked").is_symlink() and list(outside.iterdir()) == []


def test_a_write_error_fails_that_image_only(tmp_path, monkeypatch):
    images = [picture(tmp_path / f"{name}.png") for name in ("full", "fine")]
    real = pipeline._write_files

    def disk_full(image, maps, folder, *args):
        if folder.name.startswith(".full."):
            (folder / "block1.png").write_bytes(b"half")
            raise OSError(28, "No space left on device")
        real(image, maps, folder, *args)

    monkeypatch.setattr(pipeline, "_write_files", disk_full)
    out = tmp_path / "out"
    report = extract_features(vggspec.spec_from_text(TINY), images, out)
    assert report.failed == [
        (images[0], f"{images[0]}: cannot write {out}/full/: No space left on device")]
    check_out(out, report)


# --- image sizes with an open input size ------------------------------------------------

def test_images_too_small_for_an_open_spec_fail_alone(tmp_path):
    spec = vggspec.spec_from_text(OPEN)
    assert smallest_input(spec) == 4
    sizes = {"one": (1, 1), "strip": (100000, 1), "thin": (3, 50), "wide": (50, 3),
             "exact": (4, 4), "ok": (40, 30)}
    images = [picture(tmp_path / f"{name}.png", size) for name, size in sizes.items()]
    out = tmp_path / "out"
    report = extract_features(spec, images, out)
    assert [reason for _, reason in report.failed] == [
        f"{images[0]}: image is 1x1 (height x width); this spec needs at least 4x4",
        f"{images[1]}: image is 1x100000 (height x width); this spec needs at least 4x4",
        f"{images[2]}: image is 50x3 (height x width); this spec needs at least 4x4",
        f"{images[3]}: image is 3x50 (height x width); this spec needs at least 4x4"]
    assert [path.stem for path, _ in report.done] == ["exact", "ok"]
    check_out(out, report)


def tiny_activation_bytes(height: int, width: int, taps=("block1", "block2")) -> int:
    """TINY's float32 outputs up to its last tap, counted by hand from the spec."""
    block1 = height * width * (3 + 4) + (height // 2) * (width // 2) * 4  # input, conv, pool
    block2 = (height // 2) * (width // 2) * 9 * 3 + (height // 4) * (width // 4) * 9
    return 4 * (block1 + (block2 if "block2" in taps else 0))


def test_activation_limit_fails_large_images_alone(tmp_path):
    spec = vggspec.spec_from_text(OPEN)
    big, small = picture(tmp_path / "big.png", (512, 512)), picture(tmp_path / "small.png")
    assert tiny_activation_bytes(512, 512) == 16_056_320  # 15.3 MiB
    out = tmp_path / "out"
    report = extract_features(spec, [big, small], out, max_activation_bytes=10 * MIB)
    assert report.failed == [(big, (
        f"{big}: image is 512x512 (height x width); its activations would need 15.3 MiB "
        f"(float32), over the limit of 10.0 MiB; raise the limit with --max-activation-gib "
        f"if this is meant"))]
    assert [path for path, _ in report.done] == [small]
    check_out(out, report)
    # Only the layers up to the last tap count (8.0 MiB), and None is no limit.
    assert tiny_activation_bytes(512, 512, ["block1"]) == 8 * MIB
    for kwargs in ({"taps": ["block1"]}, {"max_activation_bytes": None}, {}):
        report = extract_features(spec, [big], tmp_path / "more", **kwargs)
        assert report.failed == [] and len(report.done) == 1


def test_a_fixed_input_over_the_activation_limit_is_refused_before_building(tmp_path):
    with pytest.raises(vggspec.SpecError) as caught:
        extract_features(vggspec.spec_from_text(TINY.replace("32, 32", "512, 512"),
                                                file="tiny.yaml"),
                         [picture(tmp_path / "a.png")], tmp_path / "out",
                         max_activation_bytes=10 * MIB)
    assert str(caught.value) == (
        "tiny.yaml:2:16: $.input.shape: the input is 512x512; its activations would need "
        "15.3 MiB (float32), over the limit of 10.0 MiB; raise the limit with "
        "--max-activation-gib if this is meant")
    assert list((tmp_path / "out").iterdir()) == []


def test_one_fixed_side_scales_the_image_to_it(tmp_path):
    spec = vggspec.spec_from_text(TINY.replace("[32, 32, 3]", "[null, 32, 3]"))
    images = [picture(tmp_path / "photo.png", (40, 30)),
              picture(tmp_path / "strip.png", (100, 2))]
    report = extract_features(spec, images, tmp_path / "out")
    assert report.tap_shapes == {"block1": (1, 12, 16, 4), "block2": (1, 6, 8, 9)}
    assert report.failed == [(images[1], (
        f"{images[1]}: image is 1x32 (height x width, scaled to the spec's width of 32); "
        f"this spec needs at least 4x4"))]
    check_out(tmp_path / "out", report)


# --- Ctrl-C: the report is what is on disk ----------------------------------------------

@pytest.fixture
def six(tmp_path):
    return [picture(tmp_path / "in" / f"p{index}.png", colour=(40 * index, 0, 0))
            for index in range(6)]


def join_writers() -> None:
    """Wait for writer threads left running by an interrupted call."""
    for thread in threading.enumerate():
        if thread.name.startswith("vggspec-writer"):
            thread.join(30)
            assert not thread.is_alive()


def interrupted_after_first_batch(images, out):
    """Run `features` on ``images`` in batches of 2, Ctrl-C after the first batch; return
    the report the interrupt carries."""
    def progress(done, total):
        assert total == len(images)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:
        extract_features(vggspec.spec_from_text(TINY), images, out, batch_size=2,
                         progress=progress)
    return caught.value.report


def test_ctrl_c_after_a_batch_reports_exactly_the_folders_written(six, tmp_path):
    out = tmp_path / "out"
    report = interrupted_after_first_batch(six, out)
    join_writers()
    assert [path for path, _ in report.done] == six[:2]  # the writes under way finish
    check_out(out, report)


def test_ctrl_c_again_while_waiting_keeps_a_true_report(six, tmp_path, monkeypatch):
    real_write, real_wait = pipeline._write_files, futures.wait
    release = threading.Event()

    def slow_for_p1(image, maps, folder, *args):
        if folder.name.startswith(".p1."):
            release.wait(30)
            time.sleep(0.3)  # still writing while the second Ctrl-C is handled
        real_write(image, maps, folder, *args)

    def interrupted_wait(pending, *args, **kwargs):
        if pending:
            real_wait(pending, return_when=futures.FIRST_COMPLETED)  # p0 is written
            release.set()
            raise KeyboardInterrupt  # the second Ctrl-C, while p1 is being written
        return real_wait(pending, *args, **kwargs)

    monkeypatch.setattr(pipeline, "_write_files", slow_for_p1)
    monkeypatch.setattr(pipeline, "wait", interrupted_wait)
    out = tmp_path / "out"
    report = interrupted_after_first_batch(six, out)
    assert [path for path, _ in report.done] == six[:1]
    join_writers()  # p1's writer found the run stopped and deleted its files
    check_out(out, report)


def test_ctrl_c_while_the_threads_finish_carries_the_same_report(six, tmp_path,
                                                                 monkeypatch):
    class Interrupted(futures.ThreadPoolExecutor):
        def shutdown(self, wait=True, **kwargs):
            super().shutdown(wait=False, **kwargs)
            if wait:
                raise KeyboardInterrupt  # Ctrl-C while waiting for the threads to end

    monkeypatch.setattr(pipeline, "ThreadPoolExecutor", Interrupted)
    spec = vggspec.spec_from_text(TINY)
    with pytest.raises(KeyboardInterrupt) as caught:  # at the very end of a whole run
        extract_features(spec, six, tmp_path / "whole", batch_size=2)
    assert [path for path, _ in caught.value.report.done] == six
    check_out(tmp_path / "whole", caught.value.report)

    def progress(done, total):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt) as caught:  # the second of two
        extract_features(spec, six, tmp_path / "out", batch_size=2, progress=progress)
    assert isinstance(caught.value.__context__, KeyboardInterrupt)
    assert caught.value.report is caught.value.__context__.report
    assert [path for path, _ in caught.value.report.done] == six[:2]
    join_writers()
    check_out(tmp_path / "out", caught.value.report)


def test_two_real_ctrl_c_in_quick_succession(tmp_path):
    spec = tmp_path / "open.yaml"
    spec.write_text(OPEN)
    folder = tmp_path / "in"
    for index in range(60):
        picture(folder / f"p{index:02}.png", (192, 192), (index * 4, 80, 160))
    out = tmp_path / "out"
    process = subprocess.Popen([sys.executable, "-m", "vggspec", "features", str(spec),
                                str(folder), "--out", str(out)], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stderr.readline() == "tiny on tensorflow, CPU\n"
        first = process.stderr.readline()
        assert first == "1/60 images\n"
        process.send_signal(signal.SIGINT)
        time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        rest = process.stderr.read()
        process.wait(60)
    finally:
        process.kill()
    # 130; or killed by the second SIGINT (-2) when it comes after the report is printed,
    # while the interpreter shuts down.
    assert process.returncode in (130, -signal.SIGINT), rest
    assert "Traceback" not in rest
    last = rest.splitlines()[-1]
    match = re.fullmatch(r"interrupted after (\d+) of 60 images(?:; done: (.*))?", last)
    assert match, last
    done = match.group(2).split(", ") if match.group(2) else []
    assert int(match.group(1)) == len(done)
    assert sorted(p.name for p in out.iterdir()) == sorted(Path(p).stem for p in done)
    assert not list(out.rglob("*.tmp-*"))


# --- the whole family through the command line ------------------------------------------

def test_features_command_with_hostile_inputs(special, tmp_path):
    spec = tmp_path / "open.yaml"
    spec.write_text(OPEN)
    folder = special["fifo"][0].parent  # also holds pipe.png and sock.png
    green = picture(folder / "green.png")
    picture(folder / "...png")
    picture(folder / "new\nline.png")
    picture(folder / "dot.png", (1, 1))
    picture(folder / "blocked.png")
    other = picture(tmp_path / "s2" / "green.png", colour=(0, 0, 255))
    out = tmp_path / "out"
    out.mkdir()
    (out / "blocked").write_text("x")
    result = run_cli("features", str(spec), str(folder), str(other), str(green), "--out",
                     str(out))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "tiny on tensorflow, CPU"
    assert lines[1:7] == [f"{done}/6 images" for done in range(1, 7)]  # one per image
    assert lines[7:10] == [
        f"warning: {green}: listed twice; processed once",
        f"failed: {folder}/blocked.png: cannot write {out}/blocked/: something that is not "
        f"a folder is in the way",
        f"failed: {folder}/dot.png: image is 1x1 (height x width); this spec needs at least "
        f"4x4"]
    assert re.fullmatch(r"2 of \d+ images failed", lines[10]) and len(lines) == 11
    assert sorted(p.name for p in out.iterdir()) == [
        "blocked", "green", "green_2", "image", "new_line"]
    assert f"{other} -> {out}/green_2/" in result.stdout.splitlines()
    assert not list(out.rglob("*.tmp-*"))
    assert (out / "blocked").read_text() == "x"

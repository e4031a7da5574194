"""Hostile paths and arguments at the command line: kernel files that look regular but
block, output names a file system refuses, NUL characters, control characters echoed by
argparse, and file-system failures nothing foresaw. Each must give one clean line and
exit 2, never a hang or a traceback."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

import vggspec
from conftest import ROOT, run_cli
from vggspec import cli
from vggspec.errors import EXIT_UNUSABLE_INPUT

VALID = "name: ok\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"
LONG = "a" * 300


def one_clean_line(text: str) -> None:
    assert text.count("\n") == 1, text
    assert text.strip().isprintable(), repr(text)


# --- kernel interfaces: regular-looking files whose read may block forever ----------

KERNEL_FILES = ["/proc/kmsg", "/proc/self/status", "/proc/version", "/sys/kernel/uevent_seqnum"]


@pytest.fixture
def kernel_files(tmp_path):
    """The kernel files this machine has, plus a symlink to one with a spec's ending."""
    files = [Path(name) for name in KERNEL_FILES if os.path.lexists(name)]
    link = tmp_path / "innocent.yaml"
    link.symlink_to("/proc/self/status")
    return files + [link]


def test_kernel_files_as_specs_are_refused_unread(kernel_files):
    for path in kernel_files:
        for command in ("validate", "summary"):
            result = run_cli(command, str(path), timeout=60)
            root = "/sys" if str(path).startswith("/sys") else "/proc"
            assert (result.returncode, result.stdout, result.stderr) == (
                2, "", f"{path}: is a kernel interface under {root}, not a spec file; "
                       f"refused unread\n"), path


def test_kernel_files_as_weights_and_images_are_refused_unread(kernel_files):
    model = vggspec.build_model(vggspec.spec_from_text(VALID))
    for path in kernel_files:
        root = "/sys" if str(path).startswith("/sys") else "/proc"
        with pytest.raises(vggspec.InputError) as caught:
            vggspec.load_weights(model, path)
        assert str(caught.value) == \
            f"{path}: is a kernel interface under {root}, not a weights file; refused unread"
        with pytest.raises(vggspec.InputError) as caught:
            vggspec.load_image(path, (32, 32))
        assert str(caught.value) == \
            f"{path}: is a kernel interface under {root}, not an image; refused unread"


def test_a_spec_extending_a_kernel_file_is_refused(tmp_path):
    # /proc has no .yaml files, so the extends rule refuses the link before it is opened.
    (tmp_path / "base.yaml").symlink_to("/proc/self/status")
    spec = tmp_path / "child.yaml"
    spec.write_text("extends: base.yaml\nname: child\n")
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(spec)
    assert str(caught.value).endswith(f"{tmp_path}/base.yaml is a link to a file without "
                                      f"such a name")


# --- output names the file system would refuse, found before any work --------------

@pytest.mark.parametrize("name, message", [
    (".keras", "the file name needs a name before .keras"),
    ("sub/.keras", "the file name needs a name before .keras"),
    (f"{LONG}.keras", "the file name is too long (at most 241 bytes)"),
    ("m.keras/", "is a directory"),
])
def test_unusable_save_names_are_refused_before_building(tmp_path, name, message):
    (tmp_path / "sub").mkdir()
    (tmp_path / "m.keras").mkdir()
    result = run_cli("build", "archs/vgg11.yaml", "--save", str(tmp_path / name), timeout=60)
    assert result.returncode == EXIT_UNUSABLE_INPUT
    assert result.stdout == ""            # refused before the model was built
    one_clean_line(result.stderr)
    assert result.stderr.endswith(f": {message}\n"), result.stderr


@pytest.mark.parametrize("out, message", [
    (".png", "the file name needs a name before .png"),
    (f"{LONG}.svg", "the file name is too long (at most 241 bytes)"),
    (f"{LONG}/x.png", "cannot write: File name too long"),
])
def test_unusable_diagram_names_are_refused(tmp_path, out, message):
    result = run_cli("diagram", "archs/vgg11.yaml", "--out", str(tmp_path / out), timeout=60)
    assert (result.returncode, result.stdout) == (EXIT_UNUSABLE_INPUT, "")
    assert result.stderr == f"{tmp_path / out}: {message}\n"
    assert os.listdir(tmp_path) == []


def test_an_output_folder_name_too_long_is_refused(tmp_path, tmp_path_factory):
    from PIL import Image

    image = tmp_path_factory.mktemp("images") / "cat.png"
    Image.new("RGB", (32, 32)).save(image)
    out = tmp_path / LONG / "features"
    result = run_cli("features", "archs/vgg11.yaml", str(image), "--out", str(out),
                     timeout=60)
    assert (result.returncode, result.stdout) == (EXIT_UNUSABLE_INPUT, "")
    assert result.stderr == f"{tmp_path / LONG / 'features'}: cannot use the folder: " \
                            f"File name too long\n"
    assert os.listdir(tmp_path) == []


def test_nul_characters_in_library_paths_are_input_errors(tmp_path):
    model = vggspec.build_model(vggspec.spec_from_text(VALID))
    calls = [
        (lambda: vggspec.load_spec("a\0b.yaml"), "a\\x00b.yaml: a file name cannot contain "
                                                  "a NUL character"),
        (lambda: vggspec.load_weights(model, "w\0.h5"), "w\\x00.h5: a file name cannot "
                                                        "contain a NUL character"),
        (lambda: vggspec.load_image("i\0.png", (32, 32)), "i\\x00.png: a file name cannot "
                                                          "contain a NUL character"),
        (lambda: vggspec.save_model(model, tmp_path / "m\0.keras"),
         f"{tmp_path}/m\\x00.keras: a file name cannot contain a NUL character"),
    ]
    for call, message in calls:
        with pytest.raises(vggspec.InputError) as caught:
            call()
        assert str(caught.value) == message


# --- what argparse echoes is escaped -----------------------------------------------

@pytest.mark.parametrize("args", [
    ["\x1b]0;owned\x07"],                                   # an unknown command
    ["validate", "archs/vgg11.yaml", "--\x1b[2J"],          # an unknown option
    ["features", "archs/vgg11.yaml", "x.png", "--resize", "\x1b[31mred"],   # a choice
    ["features", "archs/vgg11.yaml", "x.png", "--batch-size", "9\n\x1b[1m"],  # a type
])
def test_argparse_errors_escape_what_they_echo(args):
    result = run_cli(*args, timeout=60)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "\x1b" not in result.stderr and "\x07" not in result.stderr
    last = result.stderr.splitlines()[-1]
    assert last.startswith("vggspec") and ": error: " in last
    assert "\\x1b" in last


# --- failures nothing foresaw: one line, exit 2, a traceback only with --debug -----

def test_an_unforeseen_os_error_is_one_line(monkeypatch, capsys):
    def disk_full(args):
        raise OSError(errno.ENOSPC, "No space left on device", "out/\x1bx.png")
    monkeypatch.setattr(cli, "cmd_schema", disk_full)
    assert cli.main(["schema"]) == EXIT_UNUSABLE_INPUT
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", "out/\\x1bx.png: No space left on device\n")
    with pytest.raises(OSError):
        cli.main(["--debug", "schema"])


def test_a_diagram_that_cannot_be_written_says_so(monkeypatch, capsys, tmp_path):
    import vggspec.diagram

    def refuse(layout, path, theme="light"):
        raise PermissionError(errno.EACCES, "Permission denied")
    monkeypatch.setattr(vggspec.diagram, "write_diagram", refuse)
    out = tmp_path / "d.png"
    assert cli.main(["diagram", str(ROOT / "archs/vgg11.yaml"), "--out", str(out)]) == 2
    assert capsys.readouterr().err == f"{out}: cannot write: Permission denied\n"


def test_input_error_messages_are_capped():
    error = vggspec.InputError("x.h5: " + "\x1b" * 5000)
    assert len(str(error)) == 600 and str(error).endswith("...")
    assert str(error).startswith("x.h5: \\x1b\\x1b")


# --- found by a second attacker's pass -------------------------------------------------

def test_damaged_multi_frame_images_are_one_line_refusals(tmp_path):
    from PIL import Image

    red, blue = Image.new("RGB", (32, 32), "red"), Image.new("RGB", (32, 32), "blue")
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue, red])
    red.save(tmp_path / "pages.tif", save_all=True, append_images=[blue, red])
    for name, keep in (("anim.gif", 207), ("pages.tif", 2 / 3)):
        data = (tmp_path / name).read_bytes()
        cut = tmp_path / f"cut-{name}"
        cut.write_bytes(data[:keep if isinstance(keep, int) else int(len(data) * keep)])
        with pytest.raises(vggspec.InputError) as caught:
            vggspec.load_image(cut, 3, (32, 32))
        message = str(caught.value)
        assert message.startswith(f"{cut}: ") and "\n" not in message


def test_a_link_into_proc_inside_an_image_folder_is_skipped(tmp_path):
    from PIL import Image

    from vggspec.features import list_images

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "env.png").symlink_to("/proc/self/environ")
    assert list_images([tmp_path]) == [tmp_path / "a.png"]
    assert list_images(list_images([tmp_path])) == [tmp_path / "a.png"]


@pytest.mark.parametrize("value", ["1e300", "1e308"])
def test_huge_limits_mean_no_limit(value, capsys):
    assert cli.main(["validate", str(ROOT / "archs/vgg16.yaml"), "--max-weight-gib", value]) \
        == 0
    assert capsys.readouterr().out.endswith("vgg16.yaml: ok\n")


def test_a_link_loop_in_a_folder_of_specs_is_reported_alone(tmp_path, capsys):
    (tmp_path / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "b.yaml").symlink_to("a.yaml")
    (tmp_path / "c.yaml").write_text(VALID)
    assert cli.main(["validate", str(tmp_path)]) == 2
    captured = capsys.readouterr()
    assert captured.out == f"{tmp_path}/c.yaml: ok\n"
    assert captured.err == (f"{tmp_path}/a.yaml: cannot read: Too many levels of symbolic "
                            f"links\n{tmp_path}/b.yaml: cannot read: Too many levels of "
                            f"symbolic links\n")

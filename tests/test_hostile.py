"""Files from strangers: specs, weights and options that try to disclose a file, drive the
terminal, flood the output, hang, exhaust memory or crash. Each family is tested with
more cases than the one that was reported. (`features`' own hostile inputs, images and
output names, are in test_hostile_features.py.)"""

from __future__ import annotations

import os
import socket
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

import vggspec
from conftest import run_cli, run_python
from vggspec import _yaml
from vggspec.errors import MAX_SHOWN

VALID = "name: ok\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"
SECRET = "hunter2-SECRET-token"


def problems(text: str, base_dir: Path = Path(".")) -> list[str]:
    with pytest.raises(vggspec.SpecError) as caught:  # every check, the layers' too
        vggspec.plan(vggspec.spec_from_text(text, file="x.yaml", base_dir=base_dir))
    return [str(issue) for issue in caught.value.issues]


def one_clean_line(text: str) -> None:
    """Output that is one line, with no control character a terminal would act on."""
    assert text.count("\n") <= 1, text
    assert text.strip().isprintable(), repr(text)


# --- disclosure: extends reads only specs, and never quotes what it finds ----------

@pytest.fixture
def secrets_dir(tmp_path):
    """A folder with files a spec must never be able to print."""
    home = tmp_path / "home"
    (home / "project").mkdir(parents=True)
    (home / ".git-credentials").write_text(f"https://user:{SECRET}@example.org\n")
    (home / "notes.yaml").write_text(f"{SECRET} and more text\n")          # a YAML scalar
    (home / "list.yaml").write_text(f"- {SECRET}\n- {SECRET}\n")             # a YAML list
    (home / "config.yaml").write_text(f"password: {SECRET}\ntoken: {SECRET}\n")
    (home / "link.yaml").symlink_to(home / ".git-credentials")
    (home / "dir.yaml").mkdir()
    (home / "loop_a.yaml").symlink_to(home / "loop_b.yaml")
    (home / "loop_b.yaml").symlink_to(home / "loop_a.yaml")
    os.mkfifo(home / "pipe.yaml")
    return home


RULE = "must be a shipped spec's name (vgg16) or a path to a .yaml or .yml file"


@pytest.mark.parametrize("extends, message", [
    ("/etc/passwd", f"{RULE}; got '/etc/passwd'"),
    ("../.git-credentials", f"{RULE}; got '../.git-credentials'"),
    ("/etc/hostname", f"{RULE}; got '/etc/hostname'"),
    ("vgg16.v2", f"{RULE}; got 'vgg16.v2'"),
    ("../link.yaml", f"{RULE}; HOME/link.yaml is a link to a file without such a name"),
    ("../nothing.yaml", "base spec not found: HOME/nothing.yaml"),
    ("../dir.yaml", "HOME/dir.yaml: is a directory, not a spec file"),
    ("../pipe.yaml", "HOME/pipe.yaml: is a named pipe (FIFO), not a spec file; only regular "
                     "files are read"),
    ("../loop_a.yaml", "HOME/loop_a.yaml: cannot read: Too many levels of symbolic links"),
    ("vgg61", "no shipped spec named 'vgg61'; did you mean 'vgg19'?"),
])
def test_extends_reads_only_specs(secrets_dir, extends, message):
    found = problems(f"extends: {extends}\nname: x\n", secrets_dir / "project")
    assert found == [f"x.yaml:1:10: $.extends: {message.replace('HOME', str(secrets_dir))}"]


@pytest.mark.parametrize("base, message", [
    ("notes.yaml", "notes.yaml:1:1: $: the top level must be a mapping with name, input, "
                   "blocks and head; got text"),
    ("list.yaml", "list.yaml:1:1: $: the top level must be a mapping with name, input, "
                  "blocks and head; got a list"),
])
def test_a_base_that_is_not_a_mapping_is_named_not_quoted(secrets_dir, base, message):
    found = problems(f"extends: ../{base}\n", secrets_dir / "project")
    assert found == [f"{secrets_dir}/{message}"]


def test_a_yaml_base_with_other_keys_shows_keys_never_values(secrets_dir):
    found = problems("extends: ../config.yaml\n", secrets_dir / "project")
    assert not any(SECRET in line for line in found)
    assert f"{secrets_dir}/config.yaml:1:1: $.password: unknown key 'password' (allowed " \
           f"here: blocks, defaults, description, extends, head, input, name, taps, train)" in found


def test_a_top_level_file_that_is_not_a_spec_is_not_quoted(secrets_dir):
    result = run_cli("validate", str(secrets_dir / "notes.yaml"), "/etc/passwd")
    assert result.returncode == 1
    assert SECRET not in result.stdout and "root:" not in result.stdout
    assert result.stdout.splitlines() == [
        f"{secrets_dir}/notes.yaml:1:1: $: the top level must be a mapping with name, input, "
        f"blocks and head; got text",
        "/etc/passwd:1:1: $: the top level must be a mapping with name, input, blocks and "
        "head; got text"]


def test_quoted_values_are_short():
    long = "n" * 5000
    assert problems(VALID.replace("name: ok", f"name: '1{long}'")) == [
        "x.yaml:1:7: $.name: must be at most 64 characters, got 5001",
        "x.yaml:1:7: $.name: must start with a letter, then letters, digits, '_', '.' or '-', "
        "got '1nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...'"]
    assert problems(VALID + f"description: {long}\n") == [
        "x.yaml:5:14: $.description: must be at most 2000 characters, got 5000"]


# --- terminal injection: every piece of file text is escaped, every message one line ---

@pytest.mark.parametrize("text, expected", [
    (VALID + '"k\\e]0;TITLE\\a": 1\n',
     'x.yaml:5:1: $["k\\u001b]0;TITLE\\u0007"]: unknown key \'k\\x1b]0;TITLE\\x07\' '
     '(allowed here: blocks, defaults, description, extends, head, input, name, taps, train)'),
    (VALID.replace("name: ok", 'name: "a\\nall-specs.yaml: ok"'),
     "x.yaml:1:7: $.name: must start with a letter, then letters, digits, '_', '.' or '-', "
     "got 'a\\nall-specs.yaml: ok'"),
    (VALID + 'taps: ["block1\\e[2J"]\n',
     "x.yaml:5:8: $.taps[0]: must be a layer or block name (lower-case letters, digits, '_'), "
     "got 'block1\\x1b[2J'"),
    (VALID.replace("name: ok", 'name: "ok\\u202egnp.exe"'),
     "x.yaml:1:7: $.name: must start with a letter, then letters, digits, '_', '.' or '-', "
     "got 'ok\\u202egnp.exe'"),
    ('extends: "evil\\e]0;x\\a\\n.yaml"\n',
     "x.yaml:1:10: $.extends: base spec not found: evil\\x1b]0;x\\x07\\n.yaml"),
    ('extends: "vgg\\e[31m"\n',
     "x.yaml:1:10: $.extends: must be a shipped spec's name (vgg16) or a path to a .yaml or "
     ".yml file; got 'vgg\\x1b[31m'"),
    ("name: !<%1B]0;T%07> x\n", "x.yaml:1:7: YAML tags (\\x1b]0;T\\x07) are not allowed"),
])
def test_file_text_in_messages_is_escaped(text, expected):
    found = problems(text)
    assert expected in found
    for line in found:
        one_clean_line(line)


def test_a_file_name_with_control_characters_is_escaped(tmp_path):
    name = "evil\x1b]0;TITLE\x07\nall-specs.yaml: ok.yaml"
    (tmp_path / name).write_text(VALID + "colour: 1\n")
    (tmp_path / "fine\x1b[31m.yaml").write_text(VALID)
    result = run_cli("validate", name, "fine\x1b[31m.yaml", "gone\n.yaml", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout.splitlines() == [
        "evil\\x1b]0;TITLE\\x07\\nall-specs.yaml: ok.yaml:5:1: $.colour: unknown key 'colour' "
        "(allowed here: blocks, defaults, description, extends, head, input, name, taps, train)",
        "fine\\x1b[31m.yaml: ok"]
    assert result.stderr == "gone\\n.yaml: no such file\n"


# --- floods: a capped list, capped lengths ---------------------------------------------

def test_thousands_of_unknown_keys_print_a_capped_list(tmp_path):
    path = tmp_path / "flood.yaml"
    path.write_text(VALID + "".join(f"k{index:05d}: 1\n" for index in range(3000)))
    result = run_cli("validate", str(path))
    assert result.returncode == 1
    lines = result.stdout.splitlines()
    assert len(lines) == MAX_SHOWN + 1
    assert lines[0].startswith(f"{path}:5:1: $.k00000: unknown key 'k00000'")
    assert lines[-1] == f"{path}: ... and 2,950 more problems (the first 50 are shown)"
    with pytest.raises(vggspec.SpecError) as caught:  # the library keeps them all
        vggspec.load_spec(path)
    assert len(caught.value.issues) == 3000


def test_thousands_of_duplicate_taps_print_a_capped_list():
    found = problems(VALID + "taps: [" + ", ".join(["block1"] * 2000) + "]\n")
    assert found[0] == "x.yaml:5:7: $.taps: must have at most 256 items, got 2000"
    assert len(found) == 256  # the length once; only the first 256 are checked: 255 repeats
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.spec_from_text(VALID + "taps: [" + ", ".join(["block1"] * 2000) + "]\n",
                               file="x.yaml")
    assert str(caught.value).splitlines()[-1] == \
        "x.yaml: ... and 206 more problems (the first 50 are shown)"


@pytest.mark.parametrize("where", ["key", "extends", "tap"])
def test_a_100000_character_string_gives_a_short_line(where):
    long = "k" * 100_000
    text = {"key": VALID + f"? {long}\n: 1\n", "extends": f"extends: {long}.yaml\n",
            "tap": VALID + f"taps: [{long}]\n"}[where]
    found = problems(text)
    assert len(found) == 1
    assert len(found[0]) < 400
    one_clean_line(found[0])


def test_a_spec_over_the_size_limit_is_refused_unparsed(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text(VALID + "#" * _yaml.MAX_BYTES)
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(path)
    assert [str(i) for i in caught.value.issues] == [
        f"{path}: file is larger than 262,144 bytes, the most a spec may be"]


# --- numbers that crash -----------------------------------------------------------------

HUGE = "9" * 5001


@pytest.mark.parametrize("text, path, column", [
    (VALID.replace("[[8, max]]", f"[[{HUGE}, max]]"), "$.blocks[0][0]", "3:11"),
    (VALID.replace("[32, 32, 3]", f"[-{HUGE}, 32, 3]"), "$.input.shape[0]", "2:17"),
    (VALID + f"defaults: {{kernel: 0{HUGE}}}\n", "$.defaults.kernel", "5:20"),
    (VALID + f"defaults: {{kernel: {HUGE[:10]}_{HUGE}}}\n", "$.defaults.kernel", "5:20"),
])
def test_any_integer_literal_gets_a_positioned_error(text, path, column):
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(f"x.yaml:{column}: {path}: '")
    assert "is too large (5,0" in found[0] and found[0].endswith(
        "digits): no setting takes a number this big")
    assert len(found[0]) < 200


@pytest.mark.parametrize("number", [f"{HUGE}.5", "1e99999", f"0.{HUGE}e99999"])
def test_huge_floats_get_a_positioned_error(number):
    found = problems(VALID + f"defaults: {{lrn: {{alpha: {number}}}}}\n")
    assert len(found) == 1 and len(found[0]) < 200
    assert found[0].startswith("x.yaml:5:25: $.defaults.lrn.alpha: '")
    assert found[0].endswith("is too large: numbers must be finite")


@pytest.mark.parametrize("value", ["nan", "NaN", "-1", "-inf", "abc", "", "1e"])
def test_bad_numeric_options_are_usage_errors(value):
    result = run_cli("summary", "archs/vgg16.yaml", f"--max-weight-gib={value}")
    assert result.returncode == 2
    assert result.stderr.splitlines()[-1] == (
        f"vggspec summary: error: argument --max-weight-gib: must be a number of GiB, at "
        f"least 0 (0 or inf: no limit), got {value!r}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("value", ["inf", "0", "1e400"])
def test_inf_and_0_mean_no_limit(value):
    result = run_cli("summary", "archs/vgg16.yaml", "--max-weight-gib", value)
    assert result.returncode == 0, result.stderr
    assert "parameters:  138,357,544" in result.stdout


@pytest.mark.parametrize("option, value, most", [
    ("--batch-size", "9" * 5001, "4,096"), ("--batch-size", "0", "4,096"),
    ("--batch-size", "1.5", "4,096"), ("--max-channels", "-3", "65,536"),
    ("--max-channels", "\u0663", "65,536"), ("--batch-size", "4097", "4,096"),
])
def test_count_options_are_bounded(tmp_path, option, value, most):
    result = run_cli("features", "archs/vgg16.yaml", str(tmp_path), option, value)
    assert result.returncode == 2
    assert f"argument {option}: must be a whole number from 1 to {most}, got " in \
        result.stderr.splitlines()[-1]
    assert "Traceback" not in result.stderr


# --- follow-on errors ----------------------------------------------------------------

def test_a_broken_layer_walk_gives_no_follow_on_tap_errors():
    text = ("name: x\ninput: {shape: [8, 8, 3]}\n"
            "blocks: [[{filters: 8, kernel: 15, padding: valid}, max]]\nhead: {type: none}\n")
    assert problems(text) == [
        "x.yaml:3:11: $.blocks[0][0]: the input shrinks to 8x8 before block1_conv1, smaller "
        "than its 15x15 conv; the smallest input that works is 16x16, got 8x8"]
    assert len(problems(text + "taps: [block1, block7]\n")) == 1


# --- special files: refused before they are opened ----------------------------------

@pytest.fixture
def special(tmp_path):
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    sock_path = tmp_path / "sock.yaml"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(sock_path))
    yield {"fifo": (fifo, "a named pipe (FIFO)"), "socket": (sock_path, "a socket"),
           "device": (Path("/dev/zero"), "a character device")}
    sock.close()


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_as_specs_are_refused(special, kind):
    path, words = special[kind]
    for command in ("validate", "summary", "diagram"):
        result = run_cli(command, str(path), timeout=60)
        assert (result.returncode, result.stdout, result.stderr) == (
            2, "", f"{path}: is {words}, not a spec file; only regular files are read\n")


@pytest.mark.parametrize("kind", ["fifo", "socket", "device"])
def test_special_files_as_weights_are_refused(special, kind):
    path, words = special[kind]
    model = vggspec.build_model(vggspec.spec_from_text(VALID))
    with pytest.raises(vggspec.InputError) as caught:
        vggspec.load_weights(model, path)
    assert str(caught.value) == \
        f"{path}: is {words}, not a weights file; only regular files are read"


def test_a_fifo_as_build_weights_is_refused_before_building(special):
    path, _ = special["fifo"]
    result = run_cli("build", "archs/vgg16.yaml", "--weights", str(path), timeout=60)
    assert result.returncode == 2
    assert result.stderr == (f"{path}: is a named pipe (FIFO), not a weights file; only "
                             f"regular files are read\n")


# --- memory bombs: refused from headers, measured in a fresh interpreter -------------

TINY = "name: tiny\ninput: {shape: [16, 16, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"

MEASURE = """
import resource, sys
import vggspec
model = vggspec.build_model(vggspec.spec_from_text(sys.argv[1]))
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    vggspec.load_weights(model, sys.argv[2])
except vggspec.InputError as error:
    print(error)
print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def refused_with_peak(weights: Path) -> tuple[str, int]:
    """The refusal message, and how many MiB the refusal raised peak memory."""
    result = run_python(MEASURE, TINY, str(weights))
    assert result.returncode == 0, result.stderr
    message, grew = result.stdout.splitlines()
    return message, int(grew)


def test_a_keras_archive_that_inflates_to_512_mib_is_refused_unread(tmp_path):
    path = tmp_path / "bomb.keras"
    zeros = bytes(1 << 20)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as archive:
        archive.writestr("metadata.json", "{}")
        with archive.open("model.weights.h5", "w", force_zip64=True) as member:
            for _ in range(512):
                member.write(zeros)
    assert path.stat().st_size < 5 << 20
    message, grew = refused_with_peak(path)
    assert message == (f"{path}: model.weights.h5 would inflate to 536,870,912 bytes, more "
                       f"than model 'tiny' can need (16,779,904); refused unread")
    assert grew < 100


@pytest.mark.parametrize("layout", ["legacy", "keras3"])
def test_an_hdf5_file_declaring_a_1_gib_dataset_is_refused_from_its_header(tmp_path, layout):
    path = tmp_path / "bomb.h5"
    with h5py.File(path, "w") as handle:
        if layout == "legacy":
            handle.attrs["layer_names"] = [b"block1_conv1"]
            group = handle.create_group("block1_conv1")
            group.attrs["weight_names"] = [b"kernel", b"bias"]
        else:
            group = handle.create_group("layers/conv2d/vars")
            group.attrs["keep"] = 1
        names = ("kernel", "bias") if layout == "legacy" else ("0", "1")
        group.create_dataset(names[0], shape=(16384, 16384), dtype="float32")  # no data
        group.create_dataset(names[1], data=np.zeros(8, "float32"))
    assert path.stat().st_size < 64 << 10
    message, grew = refused_with_peak(path)
    assert message == (f"{path}: weights do not fit model 'tiny', nothing loaded: "
                       f"block1_conv1 has (16384,16384) (8,) in the file, the model needs "
                       f"(3,3,3,8) (8,)")
    assert grew < 100


def test_hdf5_links_and_storage_outside_the_file_are_not_followed(tmp_path):
    model = vggspec.build_model(vggspec.spec_from_text(TINY))
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    linked = tmp_path / "linked.h5"
    with h5py.File(linked, "w") as handle:
        handle.attrs["layer_names"] = [b"block1_conv1"]
        handle["block1_conv1"] = h5py.ExternalLink(str(fifo), "/block1_conv1")
    with pytest.raises(vggspec.InputError) as caught:
        vggspec.load_weights(model, linked)
    assert str(caught.value) == f"{linked}: 'block1_conv1' links to another file; refused"

    stored = tmp_path / "external.h5"
    with h5py.File(stored, "w") as handle:
        handle.attrs["layer_names"] = [b"block1_conv1"]
        group = handle.create_group("block1_conv1")
        group.attrs["weight_names"] = [b"kernel", b"bias"]
        group.create_dataset("kernel", shape=(3, 3, 3, 8), dtype="float32",
                             external=[(str(fifo), 0, 3 * 3 * 3 * 8 * 4)])
        group.create_dataset("bias", data=np.zeros(8, "float32"))
    with pytest.raises(vggspec.InputError) as caught:
        vggspec.load_weights(model, stored)
    assert str(caught.value) == \
        f"{stored}: '/block1_conv1/kernel' keeps its data outside the file; refused"


def test_a_weights_member_missing_or_text_data_is_refused(tmp_path):
    model = vggspec.build_model(vggspec.spec_from_text(TINY))
    path = tmp_path / "strings.h5"
    with h5py.File(path, "w") as handle:
        handle.attrs["layer_names"] = [b"block1_conv1"]
        group = handle.create_group("block1_conv1")
        group.attrs["weight_names"] = [b"kernel", b"bias"]
        group.create_dataset("kernel", data=np.zeros((3, 3, 3, 8), "float32"))
        group.create_dataset("bias", data=np.array([b"x"] * 8))
    with pytest.raises(vggspec.InputError) as caught:
        vggspec.load_weights(model, path)
    assert str(caught.value) == f"{path}: '/block1_conv1/bias' holds |S1, not numbers; " \
                                f"nothing loaded"


def test_an_unreachable_input_size_is_reported_at_once():
    text = ("name: x\ninput: {shape: [8, 8, 3]}\nblocks: [" + ", ".join(["[1, max]"] * 32)
            + "]\nhead: {type: none}\n")
    found = problems(text)
    assert len(found) == 1
    assert found[0].endswith(f"the smallest input that works is {2**32}x{2**32}, got 8x8")
    assert vggspec.plan.__module__ and vggspec.plan("archs/vgg16.yaml").params == 138357544

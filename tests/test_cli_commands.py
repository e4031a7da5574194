"""summary --json, diff, list, shipped specs by name, validate of a folder, --debug after
the command, --taps, and the Plan's repr and HTML. Mostly in-process (cli.main with
capsys): each subprocess costs a Python start."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from PIL import Image

import vggspec
import vggspec.catalogue
from conftest import ARCHS, ROOT, run_python
from test_archs import EXPECTED
from vggspec import cli
from vggspec.catalogue import first_comment, format_catalogue
from vggspec.compare import _middle, diff_plans, format_diff
from vggspec.errors import InputError, UsageError
from vggspec.extends import shipped_specs

VGG16, VGG19, VGG16_BN = (str(ROOT / "archs" / f"{name}.yaml")
                          for name in ("vgg16", "vgg19", "vgg16_bn"))
# VGG16 with batch norm and nothing else (the shipped vgg16_bn is torchvision's, which also
# changes the head).
PLAIN_BN = "extends: vgg16\nname: vgg16_plain_bn\ndefaults: {batch_norm: true}\n"
SMALL = "name: small\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"
OPEN = ("name: open\ninput: {shape: [null, null, 3]}\nblocks: [[8, max]]\n"
        "head: {type: global_avg}\n")


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


# --- summary --json -------------------------------------------------------------------

def test_summary_json_is_the_stable_plan_format(capsys):
    code, out, err = run(capsys, "summary", "--json", VGG16)
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert list(data) == ["format", "name", "input_shape", "layers", "totals"]
    assert (data["format"], data["name"], data["input_shape"]) == (
        "vggspec.plan/1", "vgg16", [224, 224, 3])
    assert len(data["layers"]) == 23
    assert data["layers"][0] == {
        "name": "input_layer", "kind": "InputLayer", "config": {"shape": [224, 224, 3]},
        "output_shape": [224, 224, 3], "params": 0, "trainable": 0, "non_trainable": 0,
        "macs": 0, "block": None, "path": "$.input.shape"}
    assert data["layers"][1] == {
        "name": "block1_conv1", "kind": "Conv2D",
        "config": {"filters": 64, "kernel_size": [3, 3], "padding": "same",
                   "activation": "relu"},
        "output_shape": [224, 224, 64], "params": 1_792, "trainable": 1_792,
        "non_trainable": 0, "macs": 86_704_128, "block": 1, "path": "$.blocks[0][0]"}
    assert data["layers"][-1]["name"] == "predictions"
    assert data["layers"][-1]["block"] is None
    assert data["totals"] == {"params": 138_357_544, "trainable": 138_357_544,
                              "non_trainable": 0, "macs": 15_470_264_320,
                              "weight_bytes": 553_430_176, "activation_bytes": 61_050_784}
    assert data == vggspec.plan(VGG16).as_dict()
    # One line per layer: readable, and a diff of two files shows changed layers alone.
    assert len(out.splitlines()) == 23 + 8


def test_json_of_an_open_input_size_and_batch_norm():
    data = json.loads(vggspec.plan(vggspec.spec_from_text(OPEN)).to_json())
    assert data["input_shape"] == [None, None, 3]
    assert data["layers"][1]["output_shape"] == [None, None, 8]
    assert data["layers"][1]["macs"] is None
    assert data["totals"]["macs"] is None and data["totals"]["activation_bytes"] is None
    bn = vggspec.plan(VGG16_BN).as_dict()
    assert bn["totals"]["non_trainable"] == 8_448
    assert bn["layers"][2]["name"] == "block1_conv1_bn"
    assert (bn["layers"][2]["trainable"], bn["layers"][2]["non_trainable"]) == (128, 128)


# --- diff -----------------------------------------------------------------------------

def row_lines(text: str) -> list[str]:
    """The table's layer rows: after the dashes, before the blank line."""
    lines = text.splitlines()
    body = lines[lines.index("-" * len(lines[3])) + 1:lines.index("")]
    return [line for line in body if not line.startswith("      ")]


def test_diff_vgg16_vgg19_adds_three_convs(capsys):
    code, out, err = run(capsys, "diff", VGG16, VGG19)
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == f"--- vgg16: {VGG16}"
    assert lines[1] == f"+++ vgg19: {VGG19}"
    assert lines[2] == ("  layer         type          output           params change  "
                        "MACs change")
    rows = row_lines(out)
    assert len(rows) == 26
    assert [line for line in rows if line[0] != " "] == [
        "+ block3_conv4  Conv2D        (56, 56, 256)         +590,080      +1.850G",
        "+ block4_conv4  Conv2D        (28, 28, 512)       +2,359,808      +1.850G",
        "+ block5_conv4  Conv2D        (14, 14, 512)       +2,359,808    +462.422M"]
    # Added where VGG19 has them: after the third conv, before the pool.
    assert rows[10:12] == [
        "+ block3_conv4  Conv2D        (56, 56, 256)         +590,080      +1.850G",
        "  block3_pool   MaxPooling2D  (28, 28, 256)"]
    assert lines[-3:] == [
        "layers:      23 -> 26: 3 added, 0 removed, 0 changed",
        "parameters:  138,357,544 -> 143,667,240 (+5,309,696)",
        "MACs:        15.470G -> 19.632G (+4.162G)"]
    assert max(len(line) for line in lines) <= 100


def test_diff_plans_rows():
    rows = diff_plans(vggspec.plan(VGG16), vggspec.plan(VGG19))
    assert [(row.name, row.params_change) for row in rows if row.status == "added"] == [
        ("block3_conv4", 590_080), ("block4_conv4", 2_359_808), ("block5_conv4", 2_359_808)]
    assert {row.status for row in rows} == {"added", "unchanged"}
    assert sum(row.params_change for row in rows) == 5_309_696
    assert sum(row.macs_change for row in rows) == 19_632_062_464 - 15_470_264_320
    backwards = diff_plans(vggspec.plan(VGG19), vggspec.plan(VGG16))
    assert [row.name for row in backwards if row.mark == "-"] == [
        "block3_conv4", "block4_conv4", "block5_conv4"]


def test_diff_of_a_spec_with_itself_shows_no_change(capsys):
    code, out, _ = run(capsys, "diff", VGG16, VGG16)
    assert code == 0
    assert all(line.startswith("  ") for line in row_lines(out))
    assert len(row_lines(out)) == 23
    assert out.splitlines()[-3:] == [
        "layers:      23 -> 23: 0 added, 0 removed, 0 changed",
        "parameters:  138,357,544 -> 138,357,544 (0)",
        "MACs:        15.470G -> 15.470G (0)"]
    code, out, _ = run(capsys, "diff", VGG16, VGG16, "--changed-only")
    assert out.splitlines()[4] == "  (no layer differs)"


def test_diff_with_batch_norm_changes_every_conv_and_adds_two_layers():
    plain_bn = vggspec.spec_from_text(PLAIN_BN, base_dir=ROOT / "archs")
    out = format_diff(vggspec.plan(VGG16), vggspec.plan(plain_bn), changed_only=True)
    lines = out.splitlines()
    assert lines[1] == "+++ vgg16_plain_bn: <text>"
    assert lines[4:11] == [
        "~ block1_conv1       Conv2D              (224, 224, 64)               0            0",
        "      activation relu -> linear",
        "+ block1_conv1_bn    BatchNormalization  (224, 224, 64)            +256            0",
        "+ block1_conv1_relu  Activation          (224, 224, 64)               0            0",
        "~ block1_conv2       Conv2D              (224, 224, 64)               0            0",
        "      activation relu -> linear",
        "+ block1_conv2_bn    BatchNormalization  (224, 224, 64)            +256            0"]
    rows = row_lines(out)
    assert [sum(line[0] == mark for line in rows) for mark in "+-~ "] == [26, 0, 13, 0]
    assert lines[-3:] == [
        "layers:      23 -> 49: 26 added, 0 removed, 13 changed",
        "parameters:  138,357,544 -> 138,374,440 (+16,896)",
        "MACs:        15.470G -> 15.470G (0)"]


def test_diff_of_the_shipped_batch_norm_spec_by_name(capsys):
    code, out, err = run(capsys, "diff", "vgg16", "vgg16_bn")
    assert (code, err) == (0, "")
    rows = row_lines(out)
    assert [line.split()[1] for line in rows if line.startswith("~")] == [
        f"block{b}_conv{c}" for b, convs in enumerate([2, 2, 3, 3, 3], 1)
        for c in range(1, convs + 1)]
    assert sum(line.startswith("+ ") and "_bn " in line for line in rows) == 13
    assert max(len(line) for line in out.splitlines()) <= 100


def test_diff_reports_shape_and_input_changes():
    small = vggspec.plan(vggspec.spec_from_text(SMALL))
    wider = vggspec.plan(vggspec.spec_from_text(
        SMALL.replace("[[8, max]]", "[[16, max], [4]]").replace("[32, 32, 3]", "[64, 64, 3]")))
    rows = {row.name: row for row in diff_plans(small, wider)}
    assert rows["input_layer"].changes == (
        "shape (32, 32, 3) -> (64, 64, 3)", "output (32, 32, 3) -> (64, 64, 3)")
    assert rows["block1_conv1"].changes == (
        "filters 8 -> 16", "output (32, 32, 8) -> (64, 64, 16)")
    assert rows["block1_conv1"].params_change == (27 * 16 + 16) - (27 * 8 + 8)
    assert [rows[name].status for name in ("block2_conv1", "block2_pool")] == [
        "added", "added"]
    text = format_diff(small, wider, width=100)
    assert "      filters 8 -> 16; output (32, 32, 8) -> (64, 64, 16)" in text.splitlines()


def test_diff_fits_a_narrower_terminal_by_cutting_text_columns():
    plain_bn = vggspec.spec_from_text(PLAIN_BN, base_dir=ROOT / "archs")
    text = format_diff(vggspec.plan(VGG16), vggspec.plan(plain_bn), width=80)
    lines = text.splitlines()
    assert max(len(line) for line in lines) == 80
    assert ("+ block1_conv1_bn    BatchNormal...  (224, 224, 64)            +256            0"
            in lines)
    assert _middle("block12_conv10_relu", 16) == "block12...0_relu"


def test_diff_by_name_and_an_unknown_name(capsys):
    code, out, _ = run(capsys, "diff", "vgg16", "vgg19", "--changed-only")
    assert code == 0 and len(row_lines(out)) == 3
    code, out, err = run(capsys, "diff", "vgg16", "vgg61")
    assert (code, out) == (2, "")
    assert err == "vgg61: no such file (and no shipped spec named 'vgg61'; see vggspec list)\n"


# --- list -----------------------------------------------------------------------------

def test_list_prints_every_shipped_spec_with_its_parameters(capsys):
    code, out, err = run(capsys, "list")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == len(ARCHS) == 11
    pattern = re.compile(r"(\S+) +([\d,]+)  (.+)")
    parsed = [pattern.fullmatch(line).groups() for line in lines]
    assert [name for name, _, _ in parsed] == sorted(path.stem for path in ARCHS)
    assert [int(count.replace(",", "")) for _, count, _ in parsed] == [
        EXPECTED[name][0] for name, _, _ in parsed]
    # Aligned: every count ends, and every description starts, in the same column.
    assert len({line.index(count) + len(count) for line, (_, count, _) in zip(lines, parsed)}) == 1
    assert len({line.index(text) for line, (_, _, text) in zip(lines, parsed)}) == 1
    # Each description is the first sentence, though the comments wrap over lines, cut
    # after a whole word where the line would pass 100 columns.
    assert all(text.endswith(".") for _, _, text in parsed if not text.endswith("..."))
    assert max(len(line) for line in lines) <= 100
    assert lines[[name for name, _, _ in parsed].index("vgg16")].startswith(
        "vgg16        138,357,544  VGG16, configuration D")


def test_list_prefers_the_description_and_marks_an_invalid_spec(capsys, monkeypatch, write):
    specs = {
        "a": write("a.yaml", "# yaml-language-server: $schema=x.json\n# From the comment.\n"
                             "description: From the field.\n" + SMALL),
        "bb": write("bb.yaml", "\n# Wrapped over\n#   two lines. Then more.\n#\n# Later.\n"
                               + SMALL),
        "c": write("c.yaml", SMALL + "# too late\n"),
        "d": write("d.yaml", SMALL.replace("[[8, max]]", "[[-8, max]]")),
    }
    monkeypatch.setattr(vggspec.catalogue, "shipped_specs", lambda: specs)
    code, out, _ = run(capsys, "list")
    assert code == 1
    assert out.splitlines() == [
        "a       224  From the field.",
        "bb      224  Wrapped over two lines.",
        "c       224",
        "d   invalid  invalid: must be at least 1, got -8"]


def test_long_descriptions_are_cut_after_a_word():
    entries = [("x", 5, "alpha beta, gamma delta"), ("yy", None, "short")]
    assert format_catalogue(entries, width=36).splitlines() == [
        "x         5  alpha beta, gamma delta", "yy  invalid  short"]
    assert format_catalogue(entries, width=35).splitlines()[0] == "x         5  alpha beta, gamma..."
    # However narrow the terminal, 20 characters of description are kept.
    assert format_catalogue(entries, width=10).splitlines()[0] == "x         5  alpha beta, gamma..."


def test_first_comment():
    assert first_comment("# yaml-language-server: $schema=a\n# One: two\n# three. Four.\n"
                         "name: x\n") == "One: two three."
    assert first_comment("# No full stop\nname: x\n") == "No full stop"
    assert first_comment("name: x\n# after\n") == ""
    assert first_comment("") == ""


# --- shipped specs by name ---------------------------------------------------------------

def test_summary_validate_and_diagram_take_a_shipped_name(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run(capsys, "summary", "vgg16")
    assert (code, out.splitlines()[0]) == (0, "vgg16: input (224, 224, 3)")
    assert run(capsys, "validate", "vgg19", "vgg16_bn") == (0, "vgg19: ok\nvgg16_bn: ok\n", "")
    code, out, _ = run(capsys, "diagram", "vgg11")
    assert (code, out) == (0, "wrote vgg11.png\n")
    with Image.open(tmp_path / "vgg11.png") as picture:
        assert picture.width > 100


def test_a_file_here_wins_over_a_shipped_spec(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "vgg16").write_text(SMALL)
    code, out, _ = run(capsys, "summary", "vgg16")
    assert (code, out.splitlines()[0]) == (0, "small: input (32, 32, 3)")


@pytest.mark.parametrize("argv", [["summary", "vgg61"], ["validate", "vgg61"],
                                  ["build", "vgg61"], ["features", "vgg61", "x.png"],
                                  ["diagram", "vgg61"], ["diff", "vgg61", "vgg16"]])
def test_an_unknown_name_is_one_line_exit_2(capsys, monkeypatch, tmp_path, argv):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "x.png").write_bytes(b"")
    assert run(capsys, *argv) == (
        2, "", "vgg61: no such file (and no shipped spec named 'vgg61'; see vggspec list)\n")


def test_a_path_is_never_taken_for_a_name(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "summary", "vgg16.yaml") == (2, "", "vgg16.yaml: no such file\n")
    assert run(capsys, "summary", "sub/vgg16") == (2, "", "sub/vgg16: no such file\n")
    assert cli.spec_argument("vgg16") == str(shipped_specs()["vgg16"])


# --- validate DIR -------------------------------------------------------------------------

def test_validate_a_folder_checks_its_specs_in_order(capsys, tmp_path):
    folder = tmp_path / "specs"
    (folder / "sub.yaml").mkdir(parents=True)
    (folder / "sub.yaml" / "deep.yaml").write_text(SMALL)
    (folder / "b.yaml").write_text(SMALL)
    (folder / "a.yml").write_text(SMALL.replace("[32, 32, 3]", "[1, 1, 3]"))
    (folder / "notes.txt").write_text("not a spec")
    code, out, err = run(capsys, "validate", str(folder))
    assert (code, err) == (1, "")
    assert out.splitlines() == [
        f"{folder}/a.yml:3:14: $.blocks[0][1]: the input shrinks to 1x1 before block1_pool, "
        f"smaller than its 2x2 max pool; the smallest input that works is 2x2, got 1x1",
        f"{folder}/b.yaml: ok"]


def test_validate_an_empty_folder_exit_2(capsys, tmp_path):
    (tmp_path / "readme.txt").write_text("no specs")
    assert run(capsys, "validate", str(tmp_path), VGG16) == (
        2, f"{VGG16}: ok\n", f"{tmp_path}: no .yaml or .yml files in this folder\n")


# --- --debug before or after the command --------------------------------------------------

@pytest.mark.parametrize("argv, debug", [
    (["summary", "x.yaml"], False), (["--debug", "summary", "x.yaml"], True),
    (["summary", "x.yaml", "--debug"], True), (["diff", "--debug", "a", "b"], True),
    (["list", "--debug"], True), (["schema"], False)])
def test_debug_parses_in_either_place(argv, debug):
    assert cli.build_parser().parse_args(argv).debug is debug


def test_debug_after_the_command_shows_the_traceback(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    assert run(capsys, "summary", "nope.yaml") == (2, "", "nope.yaml: no such file\n")
    with pytest.raises(InputError, match="^nope.yaml: no such file$"):
        cli.main(["summary", "nope.yaml", "--debug"])
    with pytest.raises(UsageError, match="^nope: no such file .and no shipped spec"):
        cli.main(["diff", "vgg16", "nope", "--debug"])


# --- features --taps ------------------------------------------------------------------------

def parse_features(*argv: str):
    args = cli.build_parser().parse_args(["features", *argv])
    args.finish(args)
    return args.taps, args.images


@pytest.mark.parametrize("argv, taps, images", [
    (["S", "--taps", "block1,block3_conv3", "a.jpg", "b.jpg"],
     ["block1", "block3_conv3"], ["a.jpg", "b.jpg"]),
    (["S", "a.jpg", "--taps", "block1", "block2"], ["block1", "block2"], ["a.jpg"]),
    (["S", "--taps", "block1", "a.jpg"], ["block1"], ["a.jpg"]),
    (["S", "a.jpg", "--taps", "block1,block2", "b.jpg"], ["block1", "block2"],
     ["a.jpg", "b.jpg"]),
    (["S", "--taps", "block1", "a.jpg", "--out", "o", "b.jpg"], ["block1"],
     ["a.jpg", "b.jpg"]),
    (["S", "--taps=block1, block2,", "a.jpg"], ["block1", "block2"], ["a.jpg"]),
    (["S", "a.jpg", "--taps", "block1", "--taps", "block2"], ["block1", "block2"], ["a.jpg"]),
    (["S", "a.jpg", "--out", "o"], None, ["a.jpg"]),
])
def test_taps_comma_separated_or_after_the_images(argv, taps, images):
    assert parse_features(*argv) == (taps, images)


@pytest.mark.parametrize("argv, message", [
    (["S", "--taps", "block1"], "the following arguments are required: IMAGE"),
    (["S", "--taps", ",", "a.jpg"], "argument --taps: give at least one tap, such as block1 "
                                    "or block1,block3_conv3"),
])
def test_taps_usage_errors(capsys, argv, message):
    with pytest.raises(SystemExit) as caught:
        parse_features(*argv)
    assert caught.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"vggspec features: error: {message}"


def test_taps_before_the_images_space_separated_says_how(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    Image.new("RGB", (8, 8)).save(tmp_path / "b.png")
    assert run(capsys, "features", "vgg16", "--taps", "block1", "block2", "a.png") == (
        2, "", "block2: no such file (before the images, --taps takes one value: write "
               "several taps comma-separated, --taps block1,block2)\n")
    code, out, err = run(capsys, "features", "vgg16", "a.png", "--taps", "block1", "b.png")
    assert (code, out) == (2, "")
    assert err == (f"{cli.spec_argument('vgg16')}: no layer or block named 'b.png' ('b.png' "
                   f"is a file: put the images before --taps)\n")
    assert not (tmp_path / "features").exists()


def test_features_with_taps_in_both_forms(capsys, tmp_path):
    spec = tmp_path / "tiny.yaml"
    spec.write_text("name: tiny\ninput: {shape: [32, 32, 3]}\nblocks: [[4, max], [9, max]]\n"
                    "head: {type: global_avg}\n")
    image = tmp_path / "green.png"
    Image.new("RGB", (40, 30), (10, 200, 30)).save(image)
    expected = ["block1: (1, 16, 16, 4)", "block2_conv1: (1, 16, 16, 9)"]
    for argv in (["--taps", "block1,block2_conv1", str(image)],
                 [str(image), "--taps", "block1", "block2_conv1"]):
        out = tmp_path / f"out{len(argv[0])}"
        code, printed, err = run(capsys, "features", str(spec), *argv, "--out", str(out),
                                 "--npz", "--no-png")
        assert (code, err) == (0, "tiny on tensorflow, CPU\n")
        assert printed.splitlines() == expected + [f"{image} -> {out}/green/"]
        assert sorted(p.name for p in (out / "green").iterdir()) == ["features.npz"]


# --- help ---------------------------------------------------------------------------------

def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit):
        cli.main([*argv, "--help"])
    return " ".join(capsys.readouterr().out.split())


def test_help_says_the_diagram_default_and_the_taps_rule(capsys):
    assert ("(default: <spec file stem>.png in the current folder, such as vgg16.png for "
            "archs/vgg16.yaml or vgg16)") in help_text(capsys, "diagram")
    assert "Before the images, --taps takes one value and what follows it is images: " \
           "--taps block1,block2 a.jpg." in help_text(capsys, "features")
    assert "--changed-only" in help_text(capsys, "diff")
    assert "format vggspec.plan/1" in help_text(capsys, "summary")


# --- Plan repr and HTML ---------------------------------------------------------------------

def test_plan_repr():
    assert repr(vggspec.plan(VGG16)) == ("<Plan vgg16: 23 layers, 138,357,544 params, 15.470G "
                                         "MACs, input (224, 224, 3)>")
    assert repr(vggspec.plan(vggspec.spec_from_text(OPEN))) == (
        "<Plan open: 4 layers, 224 params, ? MACs, input (None, None, 3)>")


def test_plan_html_is_the_summary_escaped():
    layout = vggspec.plan(VGG16)
    page = layout._repr_html_()
    assert page.startswith('<table class="vggspec-plan">\n<caption>vgg16: input '
                           '(224, 224, 3)</caption>')
    assert page.count("<tr>") == 1 + 23 + 5   # header, layers, block subtotals
    assert ('<tr><td style="text-align: left">block1_conv1</td><td style="text-align: left">'
            'Conv2D</td><td style="text-align: left">(224, 224, 64)</td>'
            '<td style="text-align: right">1,792</td><td style="text-align: right">0</td>'
            '<td style="text-align: right">86.704M</td></tr>') in page
    assert "<th" in page and "block5 total</th>" in page
    assert "parameters:  138,357,544".split()[1] in page
    odd = dataclasses.replace(layout.spec, name="<b>&'x")
    page = vggspec.Plan(odd, layout.layers)._repr_html_()
    assert "<caption>&lt;b&gt;&amp;&#x27;x: input" in page and "<b>" not in page


# --- no TensorFlow ------------------------------------------------------------------------------

def test_the_new_commands_never_import_tensorflow(tmp_path):
    (tmp_path / "s.yaml").write_text(SMALL)
    code = ("import sys, contextlib, io, vggspec.cli as c\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    codes = [c.main(['summary', '--json', 'vgg16']),\n"
            "             c.main(['diff', 'archs/vgg16.yaml', 'vgg19']), c.main(['list']),\n"
            f"             c.main(['validate', r'{tmp_path}'])]\n"
            "print(codes, 'TF' if any(m.split('.')[0] in ('tensorflow', 'keras')"
            " for m in sys.modules) else 'LIGHT')\n")
    result = run_python(code)
    assert result.stdout.splitlines()[-1] == "[0, 0, 0, 0] LIGHT", result.stderr


def test_new_writes_a_starter_that_plans(tmp_path, monkeypatch, capsys):
    from vggspec import cli

    monkeypatch.chdir(tmp_path)
    assert cli.main(["new", "mine.yaml", "--from", "vgg16_cifar"]) == 0
    assert capsys.readouterr().out == ("wrote mine.yaml (extends vgg16_cifar); open it in an "
                                       "editor with the YAML language server for completion\n")
    text = (tmp_path / "mine.yaml").read_text()
    assert "extends: vgg16_cifar\nname: mine\n" in text
    assert cli.main(["summary", "mine.yaml"]) == 0
    assert "parameters:  14,999,370" in capsys.readouterr().out
    assert cli.main(["new", "mine.yaml"]) == 2
    assert capsys.readouterr().err == "mine.yaml: already exists; --force replaces it\n"
    assert cli.main(["new", "mine.yaml", "--force", "--from", "vgg11"]) == 0
    assert "extends: vgg11\n" in (tmp_path / "mine.yaml").read_text()


def test_a_closed_pipe_is_not_an_error():
    import subprocess
    import sys

    from conftest import ROOT

    # The reader is gone before the first line is written: every write fails with EPIPE.
    child = subprocess.Popen([sys.executable, "-m", "vggspec", "summary", "archs/vgg16.yaml"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    child.stdout.close()
    error = child.stderr.read().decode()
    assert (child.wait(timeout=60), error) == (0, "")

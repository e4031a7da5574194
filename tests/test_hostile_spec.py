"""Specs from strangers that tried to make checking slow, memory-hungry or its messages
long: each bounded by a mechanism (a cap on values, lists cut to the schema's length before
jsonschema, one budget for a whole chain of extends, suggestions from a bounded set), and
every piece of file text in a message quoted short. (test_hostile.py has the first round.)

The hostile cases run in a fresh interpreter each, under a timeout, measuring their time
and peak memory there: before these mechanisms they took up to 144 s and 1.4 GiB.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import vggspec
from conftest import run_cli
from vggspec import _yaml
from vggspec.errors import MAX_SHOWN, clip_path, did_you_mean

VALID = "name: ok\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"
HEAD = "name: x\ninput: {shape: [32, 32, 3]}\nhead: {type: none}\n"
ALLOWED = "(allowed here: blocks, defaults, description, extends, head, input, name, taps, train)"
# The longest line a SpecError may print for a file with a short name: file, position,
# a path of at most 120 characters and a message of at most 600.
MAX_LINE = 800


def problems(text: str, base_dir: Path = Path(".")) -> list[str]:
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.plan(vggspec.spec_from_text(text, file="x.yaml", base_dir=base_dir))
    return [str(issue) for issue in caught.value.issues]


def clean(line: str) -> bool:
    return len(line) <= MAX_LINE and line.isprintable()


# --- hostile cases, each in a fresh interpreter with a timeout ----------------------

CHILD = """
import json, resource, sys, time
import vggspec
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
started = time.perf_counter()
issues, lines = [], []
try:
    vggspec.plan(sys.argv[1])
except (vggspec.SpecError, vggspec.InputError) as error:
    issues, lines = getattr(error, "issues", []), str(error).splitlines()
print(json.dumps({"seconds": time.perf_counter() - started, "issues": len(issues),
                  "last": str(issues[-1]) if issues else "", "lines": lines,
                  "grew_mib": (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
                  // 1024}))
"""


def check_in_child(folder: Path, entry: str) -> dict:
    """Load ``entry`` in a fresh interpreter (cwd ``folder``); its seconds, peak memory
    growth in MiB, issue count, last issue and printed lines. A hang fails at the
    timeout."""
    result = subprocess.run([sys.executable, "-c", CHILD, entry], cwd=folder,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    # A few seconds on 2 cores at most: parsing 20,000 values in pure Python takes ~1.5 s.
    assert found["seconds"] < 10, found["seconds"]
    assert all(clean(line) for line in found["lines"])
    return found


def chain(folder: Path, count: int, body) -> None:
    """c0.yaml extends c1.yaml ... extends c{count-1}.yaml, the last a whole spec."""
    for index in range(count):
        first = f"extends: ./c{index + 1}.yaml\n" if index < count - 1 else \
            HEAD + "blocks: [[8, max]]\n"
        (folder / f"c{index}.yaml").write_text(first + body(index))


def test_256_bad_taps_among_8000_layer_names(tmp_path):
    block = "{convs: [" + ", ".join(["{filters: 1, lrn: true}"] * 64) + \
        "], batch_norm: true, pool: none}"
    taps = [f"block{i}_conv{j}_relx" for i in range(1, 17) for j in range(1, 17)]
    (tmp_path / "x.yaml").write_text(
        "name: x\ninput: {shape: [null, null, 3]}\nblocks: [" + ", ".join([block] * 32) +
        "]\nhead: {type: none}\ntaps: [" + ", ".join(taps) + "]\n")
    found = check_in_child(tmp_path, "x.yaml")  # was 144 s
    assert found["issues"] == 256
    assert found["lines"][0] == ("x.yaml:5:8: $.taps[0]: no layer or block named "
                                 "'block1_conv1_relx'; did you mean 'block1_conv1_relu'?")
    # Suggestions stop after the problems that are printed.
    assert found["lines"][MAX_SHOWN - 1] == (
        "x.yaml:5:960: $.taps[49]: no layer or block named 'block4_conv2_relx'; "
        "did you mean 'block4_conv2_relu'?")
    assert found["last"] == "x.yaml:5:5075: $.taps[255]: no layer or block named " \
                            "'block16_conv16_relx'"
    assert found["lines"][-1] == "x.yaml: ... and 206 more problems (the first 50 are shown)"


def test_a_list_of_19900_items_is_reported_once_and_checked_no_further(tmp_path):
    (tmp_path / "x.yaml").write_text(HEAD + "blocks: [[" + ",".join(["x"] * 19_900) + "]]\n")
    found = check_in_child(tmp_path, "x.yaml")  # was 8.6 s, 227 MiB and 19,901 issues
    assert found["grew_mib"] < 64
    # One line for the length; the 65 items a block may have are still checked.
    assert found["issues"] == 1 + 65
    assert found["lines"][0] == "x.yaml:4:10: $.blocks[0]: must have at most 65 items, got 19900"
    assert found["lines"][1] == "x.yaml:4:11: $.blocks[0][0]: must be one of max, avg, none, " \
                                "got 'x'"


def test_a_list_of_120000_items_is_stopped_at_20000_values(tmp_path):
    (tmp_path / "x.yaml").write_text(HEAD + "blocks: [[" + ",".join(["x"] * 120_000) + "]]\n")
    assert (tmp_path / "x.yaml").stat().st_size < _yaml.MAX_BYTES
    found = check_in_child(tmp_path, "x.yaml")  # was 52 s and 1.4 GiB
    assert found["grew_mib"] < 64
    assert found["lines"] == [
        "x.yaml:4:39977: more than 20,000 values and keys, the most a spec may hold; write "
        "shared settings once, under defaults"]


def test_10000_unknown_keys_are_each_reported_and_suggested_for_the_first_50(tmp_path):
    (tmp_path / "x.yaml").write_text(HEAD + "blocks: [[8, max]]\n" + "".join(
        f"blocks{index:04d}: 1\n" for index in range(9_900)))
    found = check_in_child(tmp_path, "x.yaml")
    assert found["issues"] == 9_900
    assert found["lines"][0] == \
        f"x.yaml:5:1: $.blocks0000: unknown key 'blocks0000'; did you mean 'blocks'? {ALLOWED}"
    assert found["last"] == f"x.yaml:9904:1: $.blocks9899: unknown key 'blocks9899' {ALLOWED}"


def test_a_chain_of_17_files_of_250_kb_stops_at_one_spec_of_bytes(tmp_path):
    chain(tmp_path, 17, lambda index: "description: x\n" + "#" * 249_000 + "\n")
    found = check_in_child(tmp_path, "c0.yaml")  # read all 4 MB
    assert found["lines"] == [
        "c0.yaml:1:10: $.extends: c1.yaml is too large to extend: with the specs extending "
        "it, more than 262,144 bytes in all, the most one spec may hold"]


def test_a_chain_of_17_files_of_9000_keys_stops_at_one_spec_of_values(tmp_path):
    chain(tmp_path, 17, lambda index: "".join(f"k{index}_{key}: 1\n" for key in range(9_000)))
    found = check_in_child(tmp_path, "c0.yaml")  # was 32 s and 153,000 issues
    assert found["lines"] == [
        "c0.yaml:1:10: $.extends: c1.yaml is too large to extend: with the specs extending "
        "it, more than 20,000 values and keys in all, the most one spec may hold"]


def test_a_chain_of_17_small_files_is_bounded_by_depth(tmp_path):
    chain(tmp_path, 18, lambda index: f"description: d{index}\n")
    found = check_in_child(tmp_path, "c0.yaml")
    assert found["lines"] == ["c16.yaml:1:10: $.extends: more than 16 levels of extends"]
    chain(tmp_path, 17, lambda index: f"description: d{index}\n")
    assert vggspec.load_spec(tmp_path / "c0.yaml").description == "d0"


def test_a_chain_within_the_budgets_still_loads(tmp_path):
    chain(tmp_path, 4, lambda index: "#" * 60_000 + f"\ndescription: d{index}\n")
    assert vggspec.load_spec(tmp_path / "c0.yaml").description == "d0"


def test_the_largest_compact_network_fits_the_value_cap():
    text = ("name: x\ninput: {shape: [null, null, 3]}\nblocks: [" + ", ".join(
        ["[" + ", ".join(["16384"] * 64) + ", none]"] * 32) + "]\nhead: {type: none}\n")
    budget = _yaml.Budget()
    _yaml.parse(text, "x.yaml", budget)
    assert _yaml.MAX_NODES - budget.nodes == 2_128
    assert len(vggspec.spec_from_text(text).blocks) == 32


# --- suggestions: bounded work, same answers where names are few --------------------

LAYERS = [f"block{i}_conv{j}{suffix}" for i in range(1, 33) for j in range(1, 65)
          for suffix in ("", "_bn", "_relu", "_lrn")]


@pytest.mark.parametrize("word, expected", [
    ("block3_conv3_relx", "; did you mean 'block3_conv3_relu'?"),   # typo at the end
    ("xlock12_conv7_bn", "; did you mean 'block12_conv7_bn'?"),    # typo at the start
    ("block1_conv1_rleu", "; did you mean 'block1_conv1_relu'?"),
    ("fc1_dropuot", ""),
    ("b" * 65, ""),                                                 # longer than any name
])
def test_suggestions_among_8000_names(word, expected):
    assert did_you_mean(word, LAYERS) == expected


def test_suggestions_among_few_names_compare_every_name():
    assert did_you_mean("vgg61", ["vgg11", "vgg13", "vgg16", "vgg19"]) == \
        "; did you mean 'vgg19'?"
    assert did_you_mean("kernal", ("kernel", "padding")) == "; did you mean 'kernel'?"
    assert did_you_mean("", ["a"]) == did_you_mean(None, ["a"]) == ""


# --- file text in messages: quoted short, paths clipped key by key ------------------

LONG = 300


@pytest.mark.parametrize("value, message", [
    ("0x" + "f" * LONG, "'0xfffffffffffffffffffffffffffffffffff...' is not a decimal number; "
                        "write it in decimal"),
    ("0" + "_" * LONG + "7", "'0____________________________________...' has a leading zero: "
                             "YAML 1.1 reads it as an octal number; write 7 or quote it for a "
                             "string"),
    ("1" + "_" * LONG + ".5", "'1____________________________________...' has underscores: YAML "
                              "1.1 reads it as a number and YAML 1.2 as a string; write 1.5"),
    ("1" + "_0" * LONG, "'1_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0...' is too large (301 digits): "
                        "no setting takes a number this big"),
    ("1.5" + "_0" * LONG, "'1.5_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0_0...' has underscores: YAML "
                          "1.1 reads it as a number and YAML 1.2 as a string; write "
                          "1.50000000000000000000000000000000000..."),
    ("1" + ":1" * LONG, "'1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1:1...' is a base-60 number to "
                        "YAML 1.1 readers; quote it if a string is meant"),
    ("1" + "0" * LONG + "e5", "'1000000000000000000000000000000000000...' is a string to YAML 1.1 "
                              "readers; write it as 1.0e+305"),
    ("1." + "0" * LONG + "e5", "'1.00000000000000000000000000000000000...' is a string to YAML "
                               "1.1 readers; write it as 100000.0"),
    ("1" + "0" * 400 + ".5", "'1000000000000000000000000000000000000...' is too large: numbers "
                             "must be finite"),
])
def test_long_scalars_are_quoted_short(value, message):
    assert problems(VALID + f"defaults: {{kernel: {value}}}\n") == [
        f"x.yaml:5:20: $.defaults.kernel: {message}"]


@pytest.mark.parametrize("text, expected", [
    ("name: !" + "a" * LONG + "!b x\n",
     "x.yaml:1:7: found undefined tag handle '!aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' "
     "(while parsing a node)"),
    ("%TAG !" + "a" * LONG + "! tag:x\n%TAG !" + "a" * LONG + "! tag:y\n---\nname: 1\n",
     "x.yaml:2:1: duplicate tag handle '!aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...'"),
    ("name: !<" + "%1B" * LONG + "> x\n",
     "x.yaml:1:7: YAML tags (" + "\\x1b" * 9 + "\\...) are not allowed"),
    ("name: !" + "t" * LONG + " x\n",
     "x.yaml:1:7: YAML tags (!tttttttttttttttttttttttttttttttttttt...) are not allowed"),
    ("a: &" + "n" * LONG + " 1\nb: *" + "n" * LONG + "\n",
     "x.yaml:2:4: YAML aliases (*nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn...) are not allowed; use "
     "'extends' or 'defaults' to share settings"),
    ("k" * LONG + ": 1\n" + "k" * LONG + ": 2\n",
     "x.yaml:2:303: duplicate key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' at lines 1 and 2; "
     "keep one"),
])
def test_yaml_messages_quote_file_text_short(text, expected):
    assert problems(text) == [expected]


def test_keys_in_paths_are_clipped_each():
    key = "k" * 117
    found = problems(VALID + f'"{key} x": {{"{key}": 1}}\ndefaults: {{lrn: {{"{key}": 1}}}}\n')
    assert found == [
        "x.yaml:5:1: $[\"kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...\"]: unknown key "
        f"'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' {ALLOWED}",
        "x.yaml:6:18: $.defaults.lrn.kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...: unknown key "
        "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...' (allowed here: alpha, beta, bias, size)"]
    with pytest.raises(vggspec.SpecError) as caught:  # the library keeps the whole path
        vggspec.spec_from_text(VALID + f"{key}: 1\n")
    assert caught.value.issues[0].path == f"$.{key}"


@pytest.mark.parametrize("path, shown", [
    ('$["' + "\\u001b" * 50 + '"][3]', '$["' + "\\u001b" * 6 + '..."][3]'),
    ("$.blocks[2].filters[0]", "$.blocks[2].filters[0]"),
    ('$["a\\"b"].c', '$["a\\"b"].c'),
    ("$" + ".k" * 100, "$" + ".k" * 58 + "..."),
])
def test_clip_path(path, shown):
    assert clip_path(path) == shown


def test_a_long_bare_extends_name_is_not_found_never_crashes():
    assert problems("extends: " + "k" * LONG + "\n") == [
        "x.yaml:1:10: $.extends: no shipped spec named "
        "'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk...'"]


def test_an_extends_cycle_names_files_short(tmp_path):
    a, b = "a" * 200 + ".yaml", "b" * 200 + ".yaml"
    (tmp_path / a).write_text(f"extends: ./{b}\n")
    (tmp_path / b).write_text(f"extends: ./{a}\n")
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(tmp_path / a)
    assert caught.value.issues[0].message == (
        "extends goes round in a cycle: " + " -> ".join(
            ["a" * 37 + "...", "b" * 37 + "...", "a" * 37 + "..."]))


# --- an empty path ---------------------------------------------------------------------

def test_an_empty_path_is_no_spec_file():
    with pytest.raises(vggspec.InputError) as caught:
        vggspec.load_spec("")
    assert str(caught.value) == "'': no spec file given (the path is empty)"
    result = run_cli("validate", "", "archs/vgg16.yaml")
    assert (result.returncode, result.stdout, result.stderr) == (
        2, "archs/vgg16.yaml: ok\n", "'': no spec file given (the path is empty)\n")


# --- every printed line is short and clean, whatever the spec --------------------------

CONTROL = "\x00\x07\x08\x1b\x7f\x85\u2028\u202e\ufeff\r\t"
NASTY = "a\x1b[31m\u202e" + "z" * 5_000
BASE = VALID.replace("{", "{{").replace("}", "}}")  # VALID as a str.format template
TEMPLATES = [  # {v}: a value in any scalar form; {k}: a key
    BASE.replace("name: ok", "name: {v}"),
    BASE + "description: {v}\n",
    BASE + "taps: [{v}, {v}]\n",
    BASE + "{k}: {v}\n",
    BASE + "defaults: {{{k}: {v}, kernel: {v}, lrn: {{alpha: {v}, {k}: 1}}}}\n",
    BASE.replace("[[8, max]]", "[[{v}, {v}], {{convs: [{{filters: {v}, {k}: 1}}], pool: {v}}}]"),
    BASE.replace("{{type: none}}", "{{type: dense, {k}: {v}, units: [{v}], classes: {v}}}"),
    BASE.replace("[32, 32, 3]", "[{v}, {v}, {v}]"),
    "extends: {v}\n",
    "extends: vgg16\n{k}: {{{k}: {{{k}: [{v}]}}}}\n",
    "{k}: &{k} 1\nb: *{k}\n",
    "name: !{k} {v}\n",
]


def spellings(text: str) -> list[str]:
    """``text`` as a plain scalar (where YAML allows), quoted both ways, and as a key."""
    escaped = json.dumps(text)
    return [text, escaped, "'" + text.replace("'", "''") + "'"]


SCALARS = ["0x" + "f" * 500, "0" + "7" * 17 + "_" * 500, "1" + "_2" * 500, "1" + ":5" * 500,
           "9" * 5_000, "1" + "0" * 500 + "e5", "." + "5" * 500, "yes", ".nan", "k" * 5_000,
           "block1_" + "x" * 500, "max" + "\\e" * 100, "-" + "1" * 30]
KEYS = ["k" * 5_000, json.dumps(NASTY), json.dumps("key" + CONTROL * 20), "a b" * 200,
        "blocks" + "_" * 300]


def lines_of(text: str) -> list[str]:
    try:
        vggspec.spec_from_text(text, file="x.yaml")
    except vggspec.SpecError as error:
        return str(error).splitlines()
    return []


@pytest.mark.parametrize("template", TEMPLATES)
def test_every_line_is_short_and_clean_for_long_and_control_text(template):
    values = SCALARS + spellings(NASTY) + [json.dumps("v" + CONTROL * 50)]
    refused = 0
    for index, value in enumerate(values):
        found = lines_of(template.format(v=value, k=KEYS[index % len(KEYS)]))
        assert all(clean(line) for line in found), found
        refused += bool(found)
    assert refused >= len(values) // 2


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from(TEMPLATES),
       st.text(st.characters(blacklist_categories=("Cs",)), min_size=0, max_size=400),
       st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=400),
       st.integers(0, 2))
def test_any_text_in_any_place_prints_short_clean_lines(template, value, key, style):
    spelled = spellings(value)[style] if style else value
    for line in lines_of(template.format(v=spelled, k=json.dumps(key))):
        assert clean(line), line


def test_a_deep_path_prints_short_clean_lines():
    key = json.dumps(NASTY[:900])  # YAML allows implicit keys of up to 1024 characters
    text = VALID + "".join(f"{'  ' * depth}{key}:\n" for depth in range(30)) + \
        "  " * 30 + "x: yes\n"
    found = lines_of(text)
    step = '["a\\u001b[31m\\u202e' + "z" * 20 + '..."]'  # each key: 40 characters
    assert found == [
        f"x.yaml:5:1: ${step}: unknown key 'a\\x1b[31m\\u202e{'z' * 22}...' "
        f"{ALLOWED}",
        f"x.yaml:35:64: {('$' + step * 3)[:117]}...: 'yes' is ambiguous: YAML 1.1 reads it as a "
        f"boolean; write true or false, or quote it for a string"]


def test_9000_unknown_keys_whose_values_are_also_wrong(tmp_path):
    # Each key is unknown and each value a YAML 1.1 trap: 18,000 problems to sort out
    # against each other (this took 51 s when each was compared with every other).
    (tmp_path / "x.yaml").write_text(HEAD + "blocks: [[8, max]]\n" + "".join(
        f"k{index}: yes\n" for index in range(9_000)))
    found = check_in_child(tmp_path, "x.yaml")
    assert found["issues"] == 9_000
    assert found["lines"][0].endswith("'yes' is ambiguous: YAML 1.1 reads it as a boolean; "
                                      "write true or false, or quote it for a string")


def test_mappings_listed_twice_in_a_unique_list_are_named_not_a_crash():
    """YAML's `?A` in a flow list is a one-key mapping; two of them in taps (found by
    the property test above) once crashed the uniqueness check: mappings are unhashable."""
    found = lines_of("name: ok\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\n"
                     "head: {type: none}\ntaps: [?A, ?A]\n")
    assert "$.taps[1]: a mapping is listed twice" in " ".join(found)

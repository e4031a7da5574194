"""The YAML loader against hostile and surprising files: one clear line, never a hang."""

from __future__ import annotations

import time

import pytest

import vggspec
from vggspec import _yaml

VALID = "name: ok\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]\nhead: {type: none}\n"


def problems(text: str) -> list[str]:
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.spec_from_text(text, file="x.yaml")
    return [str(issue) for issue in caught.value.issues]


def test_billion_laughs_is_refused_fast_and_unexpanded():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for index, name in enumerate("bcdefghi"):
        previous = "abcdefghi"[index]
        lines.append(f"{name}: &{name} [" + ",".join([f"*{previous}"] * 9) + "]")
    started = time.perf_counter()
    found = problems("\n".join(lines) + "\n")
    assert time.perf_counter() - started < 0.5
    assert found == ["x.yaml:2:8: YAML aliases (*a) are not allowed; use 'extends' or "
                     "'defaults' to share settings"]


def test_object_constructing_tags_are_refused():
    assert problems('name: !!python/object/apply:os.system ["echo pwned"]\n') == [
        "x.yaml:1:7: YAML tags (!!python/object/apply:os.system) are not allowed"]
    assert problems("name: !custom x\n") == ["x.yaml:1:7: YAML tags (!custom) are not allowed"]


def test_duplicate_keys_name_both_lines():
    assert problems(VALID + "name: again\n") == [
        "x.yaml:5:7: duplicate key 'name' at lines 1 and 5; keep one"]


@pytest.mark.parametrize("text, message", [
    ("batch_norm: yes", "'yes' is ambiguous: YAML 1.1 reads it as a boolean; write true or "
                        "false, or quote it for a string"),
    ("batch_norm: off", "'off' is ambiguous: YAML 1.1 reads it as a boolean; write true or "
                        "false, or quote it for a string"),
    ("kernel: 010", "'010' has a leading zero: YAML 1.1 reads it as an octal number; write 10 "
                    "or quote it for a string"),
    ("lrn: {alpha: 1e-3}", "'1e-3' is a string to YAML 1.1 readers; write it as 0.001"),
    ("lrn: {alpha: 2.5e4}", "'2.5e4' is a string to YAML 1.1 readers; write it as 25000.0"),
    ("lrn: {alpha: .nan}", ".nan is not allowed: numbers must be finite"),
    ("lrn: {beta: .inf}", ".inf is not allowed: numbers must be finite"),
    ("lrn: {bias: 1.0e999}", "'1.0e999' is too large: numbers must be finite"),
    ("kernel: 1_0", "'1_0' has underscores: YAML 1.1 reads it as a number and YAML 1.2 as a "
                    "string; write 10"),
    ("kernel: 0x10", "'0x10' is not a decimal number; write it in decimal"),
])
def test_yaml_11_surprises_are_reported_with_the_fix(text, message):
    found = problems(VALID + "defaults:\n  " + text + "\n")
    assert len(found) == 1
    assert found[0].endswith(message)
    assert found[0].startswith("x.yaml:6:")


def test_quoted_yes_is_a_plain_string():
    spec = vggspec.spec_from_text(VALID.replace("name: ok", "name: 'yes'"))
    assert spec.name == "yes"


@pytest.mark.parametrize("data, message", [
    (b"", "x.yaml: file is empty; a spec is a mapping with name, input, blocks and head"),
    (b"# only a comment\n", "x.yaml: file is empty; a spec is a mapping with name, input, "
                            "blocks and head"),
    (b"- a\n- b\n", "x.yaml:1:1: $: the top level must be a mapping with name, input, "
                    "blocks and head; got a list"),
    (b"just words\n", "x.yaml:1:1: $: the top level must be a mapping with name, input, "
                      "blocks and head; got text"),
    (b"name: \xff\xfe\n", "x.yaml:1:7: not UTF-8 text (byte 0xff); save the spec as UTF-8"),
    (b"a: [1, 2\n", "x.yaml:2:1: expected ',' or ']', but got '<stream end>' (while parsing "
                    "a flow sequence)"),
    (b"name: x\n---\nname: y\n", "x.yaml:2:1: a spec file holds one YAML document; remove "
                                 "the extra '---' section"),
    (b"? [a, b]\n: c\n", "x.yaml:1:3: mapping keys must be plain words"),
    (b"name: a\x00b\n", "x.yaml:1:8: unacceptable character #x0000: special characters are "
                        "not allowed"),
])
def test_broken_files_get_one_clear_line(tmp_path, data, message):
    path = tmp_path / "x.yaml"
    path.write_bytes(data)
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(path)
    assert [str(i).replace(str(tmp_path) + "/", "") for i in caught.value.issues] == [message]


def test_very_deep_nesting_is_refused_quickly(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("a: " + "[" * 100_000 + "]" * 100_000 + "\n")  # under the size cap
    started = time.perf_counter()
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(path)
    assert time.perf_counter() - started < 2
    assert [i.message for i in caught.value.issues] == ["nested deeper than 32 levels"]


def test_very_large_file_is_refused_unread(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text(VALID + "#" * (2 * _yaml.MAX_BYTES))
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(path)
    assert [i.message for i in caught.value.issues] == [
        "file is larger than 262,144 bytes, the most a spec may be"]


def test_missing_file_and_directory_are_input_errors(tmp_path):
    with pytest.raises(vggspec.InputError, match="^.*nope.yaml: no such file$"):
        vggspec.load_spec(tmp_path / "nope.yaml")
    with pytest.raises(vggspec.InputError, match="is a directory, not a spec file$"):
        vggspec.load_spec(tmp_path)


def test_positions_survive_extends(write):
    write("base.yaml", VALID)
    child = write("child.yaml", "extends: ./base.yaml\nblocks: [[8, -1, max]]\n")
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.load_spec(child)
    (issue,) = caught.value.issues
    assert (issue.file.endswith("child.yaml"), issue.line, issue.column, issue.path) == (
        True, 2, 14, "$.blocks[0][1]")


def test_extends_merge_rules(write):
    write("base.yaml", "name: base\ninput: {shape: [64, 64, 3]}\n"
                       "defaults: {kernel: 3, batch_norm: true}\n"
                       "blocks: [[8, max], [16, max]]\n"
                       "head: {type: dense, units: [32, 32], classes: 5}\n"
                       "taps: [block1]\n")
    child = write("child.yaml", "extends: base.yaml\nname: child\n"
                                "defaults: {kernel: 1}\n"       # mappings merge
                                "blocks: [[4, avg]]\n"          # lists replace
                                "head: {classes: 7}\n"          # same type: merge
                                "taps: null\n")                 # null removes
    spec = vggspec.load_spec(child)
    assert spec.name == "child"
    assert [(c.filters, c.kernel, c.batch_norm) for b in spec.blocks for c in b.convs] == [
        (4, 1, vggspec.BatchNorm(epsilon=1e-3, momentum=0.99))]
    assert spec.blocks[0].pool.type == "avg"
    assert (spec.head.units, spec.head.classes) == ((32, 32), 7)
    assert spec.taps == ("block1",)
    other = write("other.yaml", "extends: base.yaml\nhead: {type: global_max}\n")
    assert vggspec.load_spec(other).head == vggspec.Head("global_max")
    assert vggspec.load_spec(other).head.classes is None


def test_extends_a_shipped_spec_by_name(write):
    spec = vggspec.load_spec(write("mine.yaml", "extends: vgg16\nname: mine\n"
                                                "input: {shape: [32, 32, 3]}\n"
                                                "head: {type: global_avg}\n"))
    assert (spec.name, len(spec.blocks), spec.head.type) == ("mine", 5, "global_avg")

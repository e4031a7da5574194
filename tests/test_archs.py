"""Every shipped spec validates, and the planner's figures are exactly the known ones."""

from __future__ import annotations

import pytest

import vggspec
from conftest import ARCHS, ROOT

# (parameters, convs per block) worked out by hand from Table 1 of the paper:
# a 3x3 conv has 9*cin*cout + cout parameters, a dense layer in*out + out.
EXPECTED = {
    "vgg11": (132_863_336, [1, 1, 2, 2, 2]),
    "vgg11_lrn": (132_863_336, [1, 1, 2, 2, 2]),
    "vgg13": (133_047_848, [2, 2, 2, 2, 2]),
    "vgg16": (138_357_544, [2, 2, 3, 3, 3]),
    "vgg16_c": (133_638_952, [2, 2, 3, 3, 3]),
    "vgg19": (143_667_240, [2, 2, 4, 4, 4]),
    # batch norm adds 4 numbers per channel (gamma, beta, moving mean and variance)
    "vgg11_bn": (132_863_336 + 4 * 2_752, [1, 1, 2, 2, 2]),
    "vgg13_bn": (133_047_848 + 4 * 2_944, [2, 2, 2, 2, 2]),
    "vgg16_bn": (138_357_544 + 4 * 4_224, [2, 2, 3, 3, 3]),
    "vgg19_bn": (143_667_240 + 4 * 5_504, [2, 2, 4, 4, 4]),
    # conv base 14,714,688 + 4 * 4,224 bn, then 512*512+512 and 512*10+10
    "vgg16_cifar": (14_714_688 + 16_896 + 262_656 + 5_130, [2, 2, 3, 3, 3]),
}


def test_every_arch_is_listed():
    assert sorted(p.stem for p in ARCHS) == sorted(EXPECTED)


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_arch_validates_and_plans(path):
    spec = vggspec.load_spec(path)
    plan = vggspec.plan(spec)
    params, convs = EXPECTED[path.stem]
    assert spec.name == path.stem
    assert plan.params == params
    assert [len(block.convs) for block in spec.blocks] == convs
    assert path.read_text().startswith(
        "# yaml-language-server: $schema=../schema/vggspec.schema.json\n")


def test_vgg16_block_figures():
    plan = vggspec.plan(ROOT / "archs" / "vgg16.yaml")
    totals = plan.block_totals()
    assert [t[1] for t in totals] == [38_720, 221_440, 1_475_328, 5_899_776, 7_079_424]
    assert [round(t[2] / 1e9, 3) for t in totals] == [1.936, 2.775, 4.624, 4.624, 1.387]
    assert plan.params == 138_357_544
    assert plan.macs == 15_470_264_320
    assert [plan.layer(f"block{i}_pool").output_shape for i in range(1, 6)] == [
        (112, 112, 64), (56, 56, 128), (28, 28, 256), (14, 14, 512), (7, 7, 512)]
    assert plan.layer("fc1").params == 25_088 * 4_096 + 4_096
    assert plan.weight_bytes == 138_357_544 * 4


def test_vgg16_layer_names_match_keras_applications():
    plan = vggspec.plan(ROOT / "archs" / "vgg16.yaml")
    names = [layer.name for layer in plan.layers]
    assert names[:4] == ["input_layer", "block1_conv1", "block1_conv2", "block1_pool"]
    assert names[-4:] == ["flatten", "fc1", "fc2", "predictions"]
    assert len(names) == 23


def test_batch_norm_and_lrn_layers_are_named_with_suffixes():
    bn = vggspec.plan(ROOT / "archs" / "vgg11_bn.yaml")
    assert [layer.name for layer in bn.layers[1:5]] == [
        "block1_conv1", "block1_conv1_bn", "block1_conv1_relu", "block1_pool"]
    assert bn.layer("block1_conv1").config["activation"] == "linear"
    lrn = vggspec.plan(ROOT / "archs" / "vgg11_lrn.yaml")
    assert [layer.name for layer in lrn.layers[1:4]] == [
        "block1_conv1", "block1_conv1_lrn", "block1_pool"]
    assert lrn.layer("block1_conv1_lrn").config == {
        "depth_radius": 2, "bias": 2.0, "alpha": 0.0001, "beta": 0.75}


def test_one_by_one_convs_of_configuration_c():
    plan = vggspec.plan(ROOT / "archs" / "vgg16_c.yaml")
    assert plan.layer("block3_conv3").config["kernel_size"] == (1, 1)
    assert plan.layer("block3_conv3").params == 256 * 256 + 256
    assert plan.layer("block3_conv3").macs == 56 * 56 * 256 * 256


def test_cifar_variant_shapes_and_dropout():
    plan = vggspec.plan(ROOT / "archs" / "vgg16_cifar.yaml")
    assert plan.layer("block5_pool").output_shape == (1, 1, 512)
    assert [layer.name for layer in plan.layers[-4:]] == [
        "flatten", "fc1", "fc1_dropout", "predictions"]
    assert plan.layer("fc1_dropout").config == {"rate": 0.5}
    assert plan.layer("predictions").output_shape == (10,)


def test_summary_table_has_block_subtotals_and_totals():
    text = str(vggspec.plan(ROOT / "archs" / "vgg16.yaml"))
    lines = text.splitlines()
    assert lines[0] == "vgg16: input (224, 224, 3)"
    subtotals = [line.split() for line in lines if line.strip().endswith("G")
                 and line.strip().startswith("block") and "total" in line]
    assert [row[2] for row in subtotals] == ["38,720", "221,440", "1,475,328", "5,899,776",
                                             "7,079,424"]
    assert [row[3] for row in subtotals] == ["0"] * 5  # non-trainable
    assert [row[4] for row in subtotals] == ["1.936G", "2.775G", "4.624G", "4.624G", "1.387G"]
    assert "parameters:  138,357,544" in lines
    assert "  trainable:      138,357,544" in lines
    assert "  non-trainable:  0" in lines
    assert "MACs:        15.470G per image (convs and dense layers)" in lines
    assert "weights:     527.8 MiB as float32" in lines


def test_open_input_size_plans_with_unknown_macs(write):
    spec = vggspec.spec_from_text(
        "name: open\ninput: {shape: [null, null, 3]}\nblocks: [[8, max], [16, max]]\n"
        "head: {type: global_avg}\n")
    plan = vggspec.plan(spec)
    assert plan.layer("block2_pool").output_shape == (None, None, 16)
    assert plan.macs is None
    assert plan.params == (27 * 8 + 8) + (72 * 16 + 16)
    assert plan.layer("global_average_pooling2d").output_shape == (16,)


def test_weight_limit_names_the_largest_layer():
    spec = vggspec.load_spec(ROOT / "archs" / "vgg16.yaml")
    with pytest.raises(vggspec.SpecError) as caught:
        vggspec.plan(spec, max_weight_bytes=100 * 2**20)
    (issue,) = caught.value.issues
    assert issue.path == "$.head.units[0]"
    assert issue.line == 15
    assert issue.message.startswith(
        "the weights need 527.8 MiB (float32, 138,357,544 parameters), over the limit of "
        "100.0 MiB; the largest layer is fc1 with 102,764,544 parameters (392.0 MiB)")


def test_dataclass_defaults_come_from_the_schema():
    schema = vggspec.json_schema()
    conv, on = vggspec.Conv(filters=1), vggspec.BatchNorm()
    for key in ("kernel", "padding", "activation"):
        assert schema["properties"]["defaults"]["properties"][key]["default"] == getattr(conv, key)
    assert schema["properties"]["defaults"]["properties"]["batch_norm"]["default"] is False
    assert conv.batch_norm is None
    settings = schema["$defs"]["batch_norm"]["oneOf"][1]["properties"]
    assert (settings["epsilon"]["default"], settings["momentum"]["default"]) == \
        (on.epsilon, on.momentum) == (1e-3, 0.99)  # Keras' own BatchNormalization defaults
    lrn = vggspec.Lrn()
    for key in ("size", "alpha", "beta", "bias"):
        assert schema["$defs"]["lrn"]["properties"][key]["default"] == getattr(lrn, key)
    # A dense head's defaults are keras.applications' top; a global one has no classifier.
    dense = vggspec.spec_from_text("name: d\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]"
                                   "\nhead: {type: dense}\n").head
    assert (dense.units, dense.classes, dense.dropout, dense.activation) == \
        ((4096, 4096), 1000, 0.0, "softmax")
    pooled = vggspec.spec_from_text("name: d\ninput: {shape: [32, 32, 3]}\nblocks: [[8, max]]"
                                    "\nhead: {type: global_avg}\n").head
    assert (pooled.units, pooled.classes) == ((), None)


def test_schema_describes_every_property():
    missing = []

    def visit(node, where):
        if isinstance(node, dict):
            # A conditional branch only adds defaults or refusals to properties described
            # where they are declared.
            for key, prop in node.get("properties", {}).items():
                if any(part in where for part in ("/if", "/then", "/else")):
                    continue
                if isinstance(prop, dict) and "description" not in prop:
                    missing.append(f"{where}.{key}")
            if node.get("type") == "object" and node.get("properties"):
                if node.get("additionalProperties") is not False:
                    missing.append(f"{where} allows extra keys")
            for key, value in node.items():
                visit(value, f"{where}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                visit(value, f"{where}[{index}]")

    visit(vggspec.json_schema(), "#")
    assert missing == []


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_the_resolved_form_is_a_spec_that_plans_the_same(path):
    import yaml

    spec = vggspec.load_spec(path)
    again = vggspec.spec_from_text(yaml.safe_dump(spec.to_dict(), sort_keys=False),
                                   file=f"{path.stem}-resolved.yaml")
    first, second = vggspec.plan(spec), vggspec.plan(again)
    assert [(l.name, l.kind, l.output_shape, l.params, l.config) for l in first.layers] == \
        [(l.name, l.kind, l.output_shape, l.params, l.config) for l in second.layers]


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_shipped_specs_pass_the_raw_schema_as_written(path):
    from conftest import raw_schema_problems

    assert raw_schema_problems(path.read_text()) == []


def readme_yaml_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    return [block.split("```", 1)[0] for block in text.split("```yaml\n")[1:]]


def test_every_spec_the_readme_shows_passes_vggspec_and_the_raw_schema():
    import yaml

    from conftest import raw_schema_problems

    blocks = readme_yaml_blocks()
    assert len(blocks) == 5
    base = {"name": "readme", "input": {"shape": [224, 224, 3]},
            "blocks": [[64, "max"]], "head": {"type": "none"}}
    for text in blocks:
        data = yaml.safe_load(text)
        if isinstance(data, list):          # a fragment of blocks
            data = {**base, "blocks": data}
        elif set(data) in ({"head"}, {"train"}):   # a fragment: a head, training settings
            data = {**base, **data}
        document = yaml.safe_dump(data, sort_keys=False)
        assert raw_schema_problems(document) == [], text
        vggspec.plan(vggspec.spec_from_text(document, file="README.md"))

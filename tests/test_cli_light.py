"""The light commands: validate, summary and schema, their output and exit codes, and
that they never import TensorFlow."""

from __future__ import annotations

import json

from conftest import INVALID, ROOT, run_cli, run_python


def test_validate_all_archs_exit_0():
    result = run_cli("validate", *[f"archs/{p.name}" for p in sorted((ROOT / "archs").glob("*.yaml"))])
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[0] == "archs/vgg11.yaml: ok"
    assert len(result.stdout.splitlines()) == 11


def test_validate_reports_every_problem_and_exits_1():
    result = run_cli("validate", "bad_pool_name.yaml", "yaml11.yaml", cwd=INVALID)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "bad_pool_name.yaml:4:10: $.blocks[0][1]: must be one of max, avg, none, got 'maxx'; "
        "did you mean 'max'?",
        "bad_pool_name.yaml:5:44: $.blocks[1].pool.size: must be at least 1, got 0",
        "bad_pool_name.yaml: note: the checks that need the layers (input size, taps) did not "
        "run: $.blocks has problems",
        "yaml11.yaml:4:15: $.defaults.batch_norm: 'yes' is ambiguous: YAML 1.1 reads it as a "
        "boolean; write true or false, or quote it for a string",
        "yaml11.yaml:5:16: $.defaults.lrn.alpha: '1e-4' is a string to YAML 1.1 readers; "
        "write it as 0.0001",
        "yaml11.yaml:7:6: $.blocks[0][0]: '064' has a leading zero: YAML 1.1 reads it as an "
        "octal number; write 64 or quote it for a string",
        "yaml11.yaml: note: the checks that need the layers (input size, taps) did not run: "
        "$.defaults, $.blocks have problems"]
    assert "Traceback" not in result.stderr


def test_validate_missing_file_exit_2_and_a_folder_is_its_specs():
    result = run_cli("validate", "archs/vgg16.yaml", "archs/nope.yaml", "archs")
    assert result.returncode == 2
    assert result.stdout.splitlines() == ["archs/vgg16.yaml: ok"] + [
        f"archs/{path.name}: ok" for path in sorted((ROOT / "archs").glob("*.yaml"))]
    assert result.stderr.splitlines() == ["archs/nope.yaml: no such file"]


def test_validate_resolved_prints_the_merged_spec():
    import yaml

    result = run_cli("validate", "--resolved", "archs/vgg16_cifar.yaml")
    assert result.returncode == 0
    resolved = yaml.safe_load(result.stdout)
    assert resolved["input"] == {"shape": [32, 32, 3]}
    assert resolved["head"] == {"type": "dense", "units": [512], "dropout": 0.5,
                                "classes": 10, "activation": "softmax"}
    assert resolved["blocks"][2]["convs"][2] == {
        "filters": 256, "kernel": 3, "padding": "same", "activation": "relu",
        "batch_norm": {"epsilon": 0.001, "momentum": 0.99}, "lrn": False}


def test_summary_prints_the_table():
    result = run_cli("summary", "archs/vgg16.yaml")
    assert result.returncode == 0
    lines = result.stdout.splitlines()
    assert lines[0] == "vgg16: input (224, 224, 3)"
    assert "parameters:  138,357,544" in lines
    assert sum(1 for line in lines if " total " in line) == 5


def test_summary_weight_limit_exit_1():
    result = run_cli("summary", "--max-weight-gib", "0.25", "archs/vgg16.yaml")
    assert result.returncode == 1
    assert result.stderr.startswith("archs/vgg16.yaml:15:11: $.head.units[0]: the weights "
                                    "need 527.8 MiB")
    assert result.stdout == ""


def test_schema_prints_the_json_schema():
    result = run_cli("schema")
    assert result.returncode == 0
    schema = json.loads(result.stdout)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    # Without extends a spec needs all four; with it, none its base provides.
    assert schema["allOf"][0] == {
        "if": {"required": ["extends"]},
        "else": {"required": ["name", "input", "blocks", "head"],
                 "properties": {"head": {"required": ["type"]}, "taps": {"type": "array"},
                                "description": {"type": "string"},
                                "defaults": {"type": "object"}}}}


def test_usage_error_exit_2():
    result = run_cli("validate")
    assert result.returncode == 2
    assert "usage: vggspec validate" in result.stderr


def test_light_paths_never_import_tensorflow():
    code = ("import sys, vggspec.cli as c\n"
            "c.main(['validate', 'archs/vgg16.yaml']); c.main(['summary', 'archs/vgg19.yaml'])\n"
            "c.main(['schema'])\n"
            "print('TF' if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules)"
            " else 'LIGHT')\n")
    result = run_python(code)
    assert result.stdout.splitlines()[-1] == "LIGHT"


def test_heavy_names_load_on_first_use_and_keras_on_first_call():
    code = ("import sys, vggspec\n"
            "light = 'tensorflow' not in sys.modules and 'numpy' not in sys.modules\n"
            "grid = vggspec.render_grid\n"
            "print(light, 'tensorflow' in sys.modules, grid.__module__,"
            " vggspec.build_model.__module__, 'tensorflow' in sys.modules)")
    result = run_python(code)
    # Keras itself is imported only when build_model is called.
    assert result.stdout.split() == ["True", "False", "vggspec.render", "vggspec.builder",
                                     "False"]


def test_debug_shows_the_traceback_otherwise_one_line():
    quiet = run_cli("validate", "archs/nope.yaml")
    loud = run_cli("--debug", "validate", "archs/nope.yaml")
    assert quiet.stderr == "archs/nope.yaml: no such file\n"
    assert "Traceback (most recent call last)" in run_cli("--debug", "summary",
                                                          "archs/nope.yaml").stderr
    assert loud.returncode == 2 and loud.stderr == quiet.stderr  # validate reports, no crash

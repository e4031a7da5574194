"""Editor support: every modeline vggspec ships or writes finds the schema, in a checkout
and installed; `new_spec` writes starters that load; the YAML passes yamllint."""

from __future__ import annotations

import os
import posixpath
import re
import tomllib
import zipfile
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import url2pathname

import pytest
from yamllint import linter
from yamllint.config import YamlLintConfig

import vggspec
import vggspec.schema
from conftest import ARCHS, ROOT
from vggspec import starter
from vggspec.spec import shipped_archs
from vggspec.starter import new_spec

SCHEMA = ROOT / "vggspec" / "schema" / "vggspec.schema.json"
# The same file as the package finds it (the path a starter's modeline is worked out to).
INSTALLED = Path(os.path.abspath(vggspec.schema.__file__)).parent / "vggspec.schema.json"
SHIPPED = sorted(p.stem for p in ARCHS)
# The YAML language server's own tests for a modeline (modelineUtil.ts): a comment line
# starting '# yaml-language-server:', and the path after '$schema=' up to a space.
MODELINE = re.compile(r"#\s+(?:yaml-language-server\s*:|\$schema:)")
REFERENCE = re.compile(r"\$schema(?:=|:\s*)(\S+)")
# What new_spec writes after its modeline, for a file my_net.yaml extending vgg16.
STARTER_BODY = [
    "# Starts from vgg16; what you write here overrides it.",
    "extends: vgg16",
    "name: my_net",
    "# Overrides to uncomment: mappings merge key by key, lists replace whole.",
    "# `vggspec validate --resolved` on this file prints the merged spec.",
    "# input:",
    "#   shape: [64, 64, 3]",
    "# head:",
    "#   classes: 10",
]


def schema_reference(spec: Path) -> str:
    """The schema a spec's one modeline names, as written."""
    lines = [line for line in spec.read_text("utf-8").splitlines() if MODELINE.match(line)]
    assert len(lines) == 1, lines
    return REFERENCE.search(lines[0]).group(1)


def editor_target(spec: Path) -> Path:
    """Where the language server looks for the schema of ``spec`` opened at this path: a
    file: URI as it is, a relative path joined to the file's folder lexically (Node's
    path.resolve: '..' is not taken after following a link)."""
    reference = schema_reference(spec)
    if reference.startswith("file:"):
        return Path(url2pathname(urlparse(reference).path))
    return Path(os.path.normpath(os.path.join(os.path.abspath(spec.parent), reference)))


def lint(path: Path) -> list[tuple[int, str, str]]:
    """yamllint's problems with its default rules: (line, level, rule)."""
    problems = linter.run(path.read_text("utf-8"), YamlLintConfig("extends: default"),
                          str(path))
    return [(problem.line, problem.level, problem.rule) for problem in problems]


# --- the shipped specs -------------------------------------------------------------

@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_shipped_modeline_finds_the_schema_in_a_checkout(path):
    assert schema_reference(path) == "../schema/vggspec.schema.json"
    target = editor_target(path)
    assert target == ROOT / "schema" / "vggspec.schema.json"
    assert target.is_file() and os.path.samefile(target, SCHEMA)


def test_shipped_modelines_find_the_schema_where_setuptools_installs_them():
    # The wheel's layout, read from pyproject.toml: each package lands in the folder its
    # dotted name spells, with the package data its patterns match, whatever folder of
    # the checkout it comes from.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"][
        "setuptools"]
    assert {"vggspec.archs", "vggspec.schema"} <= set(setuptools["packages"])
    source = {package: setuptools.get("package-dir", {}).get(package,
                                                             package.replace(".", "/"))
              for package in ("vggspec.archs", "vggspec.schema")}
    assert source == {"vggspec.archs": "archs", "vggspec.schema": "vggspec/schema"}
    assert setuptools["package-data"]["vggspec.archs"] == ["*.yaml"]
    assert setuptools["package-data"]["vggspec.schema"] == ["*.json"]
    assert (ROOT / source["vggspec.schema"] / SCHEMA.name).is_file()
    assert sorted((ROOT / source["vggspec.archs"]).glob("*.yaml")) == ARCHS
    for path in ARCHS:
        installed = posixpath.join("vggspec/archs", path.name)
        target = posixpath.normpath(posixpath.join(posixpath.dirname(installed),
                                                   schema_reference(path)))
        assert target == "vggspec/schema/vggspec.schema.json", path.name


def test_extends_finds_the_shipped_specs():
    assert sorted(p.stem for p in shipped_archs().glob("*.yaml")) == SHIPPED
    assert vggspec.spec_from_text("extends: vgg19\nname: mine\n").name == "mine"


def test_schema_id_is_an_identifier_not_an_address():
    schema = vggspec.json_schema()
    assert schema["$id"] == "urn:vggspec:schema:spec"
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_shipped_specs_pass_yamllint_default_rules(path):
    # No errors. The one warning is document-start: a spec is a single document (the
    # loader refuses a second), so it carries no '---', and the line numbers quoted in
    # messages and the README stay as they are.
    first_content = next(number for number, line in enumerate(
        path.read_text("utf-8").splitlines(), 1) if not line.startswith("#"))
    assert lint(path) == [(first_content, "warning", "document-start")]


# --- new_spec ----------------------------------------------------------------------

def test_new_spec_writes_a_starter_that_loads(tmp_path):
    path = new_spec(tmp_path / "my_net.yaml")
    assert path == tmp_path / "my_net.yaml"
    lines = path.read_text("utf-8").splitlines()
    assert MODELINE.match(lines[0]) and lines[1:] == STARTER_BODY
    assert editor_target(path).is_file() and os.path.samefile(editor_target(path), SCHEMA)
    assert schema_reference(path) == os.path.relpath(INSTALLED, tmp_path)
    spec = vggspec.load_spec(path)
    assert spec.name == "my_net"
    assert vggspec.plan(spec).params == 138_357_544
    assert lint(path) == [(3, "warning", "document-start")]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["my_net.yaml"]


def test_new_spec_in_a_nested_folder_points_up_to_the_schema(tmp_path):
    folder = tmp_path / "projects" / "vision" / "nets" / "small"
    folder.mkdir(parents=True)
    path = new_spec(folder / "cifar.yml", base="vgg16_cifar")
    reference = schema_reference(path)
    assert reference == os.path.relpath(INSTALLED, folder)
    assert reference.startswith("../../../../")
    assert os.path.samefile(editor_target(path), SCHEMA)
    first = path.read_text("utf-8").splitlines()[0]
    # Too long for 80 columns with the space, so written as one word without it.
    assert first == f"# yaml-language-server:$schema={reference}"
    assert len(f"# yaml-language-server: $schema={reference}") > 80
    assert vggspec.load_spec(path).name == "cifar"
    assert vggspec.plan(vggspec.load_spec(path)).params == 14_999_370
    assert lint(path) == [(3, "warning", "document-start")]


def test_a_modeline_that_fits_80_columns_keeps_the_usual_space():
    # With an editable install, a spec written in archs/ of this checkout names the
    # package's schema file itself, a short path.
    reference = os.path.relpath(INSTALLED, ROOT / "archs")
    assert starter._modeline(ROOT / "archs" / "x.yaml") == (
        f"# yaml-language-server: $schema={reference}")


def test_a_space_or_hash_in_the_new_files_folder_is_climbed_over(tmp_path):
    folder = tmp_path / "my specs #2"
    folder.mkdir()
    path = new_spec(folder / "net.yaml")
    assert schema_reference(path) == os.path.relpath(INSTALLED, folder)
    assert os.path.samefile(editor_target(path), SCHEMA)
    assert vggspec.load_spec(path).name == "net"


def test_new_spec_uses_a_file_uri_where_a_path_would_be_cut(tmp_path, monkeypatch):
    # vggspec installed under a folder with a space and a '#' in its name: the language
    # server would read the path only up to the space, and cut it at the '#'.
    copy = tmp_path / "site packages #1" / "vggspec" / "schema" / SCHEMA.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(SCHEMA.read_bytes())
    monkeypatch.setattr(starter, "_installed_schema", lambda: copy)
    (tmp_path / "specs").mkdir()
    path = new_spec(tmp_path / "specs" / "net.yaml")
    assert schema_reference(path) == copy.as_uri()
    assert "%20" in copy.as_uri() and "%23" in copy.as_uri()
    assert editor_target(path) == copy
    assert vggspec.load_spec(path).name == "net"


def test_a_path_down_into_the_folder_starts_with_dot_slash(tmp_path, monkeypatch):
    # The language server takes a modeline path starting with 'http' for an address.
    copy = tmp_path / "http-venv" / "vggspec" / "schema" / SCHEMA.name
    copy.parent.mkdir(parents=True)
    copy.write_bytes(SCHEMA.read_bytes())
    monkeypatch.setattr(starter, "_installed_schema", lambda: copy)
    path = new_spec(tmp_path / "net.yaml")
    assert schema_reference(path) == "./http-venv/vggspec/schema/vggspec.schema.json"
    assert editor_target(path) == copy
    assert path.read_text("utf-8").splitlines()[0] == (
        "# yaml-language-server: $schema=./http-venv/vggspec/schema/vggspec.schema.json")
    assert lint(path) == [(3, "warning", "document-start")]


def test_new_spec_uses_a_file_uri_when_no_relative_path_exists(tmp_path, monkeypatch):
    def another_drive(path, start=os.curdir):
        raise ValueError("path is on mount 'D:', start on mount 'C:'")

    monkeypatch.setattr(starter.os.path, "relpath", another_drive)
    path = new_spec(tmp_path / "net.yaml")
    monkeypatch.undo()
    assert schema_reference(path) == INSTALLED.as_uri()
    assert os.path.samefile(editor_target(path), SCHEMA)


def test_new_spec_follows_the_path_the_editor_opens_not_links(tmp_path):
    # A folder reached through a link: the editor resolves '..' in the path as opened.
    real = tmp_path / "deep" / "down" / "real"
    real.mkdir(parents=True)
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    path = new_spec(tmp_path / "link" / "net.yaml")
    assert schema_reference(path) == os.path.relpath(INSTALLED, tmp_path / "link")
    assert schema_reference(path) != os.path.relpath(INSTALLED, real)
    assert os.path.samefile(editor_target(path), SCHEMA)


@pytest.mark.parametrize("file, name", [
    ("my net.v2.yaml", "my_net.v2"),
    ("2024-run.yml", "spec_2024-run"),
    ("réseau.yaml", "r_seau"),
    ("yes.yaml", "yes"),
    ("null.yaml", "null"),
    ("Off.yml", "Off"),
    ("n" * 100 + ".yaml", "n" * 64),
])
def test_new_spec_names_the_spec_after_the_file(tmp_path, file, name):
    path = new_spec(tmp_path / file)
    assert vggspec.load_spec(path).name == name
    assert lint(path) == [(3, "warning", "document-start")]


@pytest.mark.parametrize("base", SHIPPED)
def test_new_spec_from_every_shipped_base_loads_and_lints(tmp_path, base):
    path = new_spec(tmp_path / "mine.yaml", base=base)
    spec = vggspec.load_spec(path)
    assert spec.name == "mine"
    assert vggspec.plan(spec).params == vggspec.plan(ROOT / "archs" / f"{base}.yaml").params
    assert lint(path) == [(3, "warning", "document-start")]


def test_new_spec_refuses_an_existing_file_unless_forced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("my.yaml").write_text("name: mine\n", encoding="utf-8")
    with pytest.raises(vggspec.InputError) as caught:
        new_spec("my.yaml")
    assert str(caught.value) == "my.yaml: already exists; --force replaces it"
    assert Path("my.yaml").read_text("utf-8") == "name: mine\n"
    assert new_spec("my.yaml", base="vgg11", force=True) == Path("my.yaml")
    assert vggspec.load_spec("my.yaml").name == "my"
    assert sorted(os.listdir()) == ["my.yaml"]


def test_new_spec_refuses_a_dangling_link_unless_forced(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.symlink("gone.yaml", "my.yaml")
    with pytest.raises(vggspec.InputError, match=r"^my\.yaml: already exists; --force "):
        new_spec("my.yaml")
    new_spec("my.yaml", force=True)
    assert not os.path.islink("my.yaml") and not os.path.exists("gone.yaml")


@pytest.mark.parametrize("arguments, message", [
    (("my.txt",), "my.txt: the file name must end in .yaml or .yml"),
    (("nope/my.yaml",), "nope: no such folder"),
    (("",), "'': no spec file given (the path is empty)"),
    (("my.yaml", "vgg61"), "no shipped spec named 'vgg61'; choose one of: "
                           + ", ".join(SHIPPED)),
    (("my.yaml", "archs/vgg16.yaml"), "no shipped spec named 'archs/vgg16.yaml'; choose "
                                      "one of: " + ", ".join(SHIPPED)),
])
def test_new_spec_refusals(tmp_path, monkeypatch, arguments, message):
    monkeypatch.chdir(tmp_path)
    os.mkdir("folder.yaml")
    with pytest.raises((vggspec.InputError, vggspec.UsageError)) as caught:
        new_spec(*arguments)
    assert str(caught.value) == message
    assert os.listdir() == ["folder.yaml"]


def test_new_spec_refuses_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    os.mkdir("folder.yaml")
    with pytest.raises(vggspec.InputError) as caught:
        new_spec("folder.yaml")
    # _files.check_output_file's own "is a directory" is caught by its `except OSError`
    # (InputError is one) and wrapped as "cannot write: ...": either way, one line.
    assert str(caught.value) in ("folder.yaml: is a directory",
                                 "folder.yaml: cannot write: folder.yaml: is a directory")
    assert os.listdir() == ["folder.yaml"]


def test_new_spec_refuses_when_the_schema_is_not_a_file(tmp_path, monkeypatch):
    archive = tmp_path / "vggspec.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("vggspec/schema/vggspec.schema.json", SCHEMA.read_text("utf-8"))
    monkeypatch.setattr(starter.resources, "files",
                        lambda package: zipfile.Path(archive, "vggspec/schema/"))
    with pytest.raises(vggspec.InputError) as caught:
        new_spec(tmp_path / "net.yaml")
    assert str(caught.value) == (
        f"{archive}/vggspec/schema/vggspec.schema.json: vggspec's schema is not a file on "
        f"disk (vggspec runs from a zip?), so no modeline can point at it; write it with "
        f"`vggspec schema > vggspec.schema.json` and point at that")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vggspec.zip"]

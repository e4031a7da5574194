"""The diagram as a figure for a paper or a slide: legible in a 7-inch column, nothing
overlapping, batch norm folded into its conv, thickness that follows the channels,
light and dark themes, and PNG, SVG and PDF files with their text kept as text."""

from __future__ import annotations

import itertools
import re
import xml.etree.ElementTree as ElementTree

import matplotlib.text
import numpy as np
import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from matplotlib.colors import to_rgba
from matplotlib.transforms import Bbox
from PIL import Image

import vggspec
from conftest import ARCHS, ROOT, run_cli, run_python
from vggspec.diagram import DPI, FIGURE_WIDTH, diagram_boxes, render_diagram, write_diagram

COLUMN = 7.0  # inches: the column the figure is scaled to
VGG16_TEXTS = (
    ["vgg16: 138,357,544 parameters", "input 224×224×3"] + ["conv3-64"] * 2 + ["maxpool"]
    + ["conv3-128"] * 2 + ["maxpool"] + ["conv3-256"] * 3 + ["maxpool"]
    + ["conv3-512"] * 3 + ["maxpool"] + ["conv3-512"] * 3
    + ["maxpool", "FC-4096", "FC-4096", "FC-1000", "soft-max"]
    + ["112×112×64", "56×56×128", "28×28×256", "14×14×512", "7×7×512", "1000"]
    + ["input", "convolution + activation", "pooling", "fully connected + activation",
       "soft-max"])


def texts(figure) -> list[matplotlib.text.Text]:
    return [t for t in figure.findobj(matplotlib.text.Text) if t.get_text()]


def legend(figure) -> list[str]:
    """The legend's entries: the unrotated texts below the lowest caption."""
    captions_and_legend = [t for t in texts(figure) if t.get_rotation() == 0][1:]
    lowest_caption = min(t.get_position()[1] for t in captions_and_legend
                         if t.get_va() == "top")
    return [t.get_text() for t in captions_and_legend if t.get_position()[1] < lowest_caption]


def box_faces(figure) -> list[Bbox]:
    """The pixel extent of every drawn face (front, top, side of each box, in order)."""
    (collection,) = figure.findobj(PolyCollection)
    transform = collection.get_transform()
    return [Bbox([transform.transform(path.vertices).min(axis=0),
                  transform.transform(path.vertices).max(axis=0)])
            for path in collection.get_paths()]


def collisions(figure) -> list[str]:
    """Every text that overlaps another text or a box, or leaves the page."""
    renderer = FigureCanvasAgg(figure).get_renderer()
    found = [(t.get_text(), t.get_window_extent(renderer)) for t in texts(figure)]
    page, faces, problems = figure.bbox, box_faces(figure), []
    for (a, first), (b, second) in itertools.combinations(found, 2):
        if first.overlaps(second):
            problems.append(f"{a!r} overlaps {b!r}")
    for name, extent in found:
        if any(extent.overlaps(face) for face in faces):
            problems.append(f"{name!r} overlaps a box")
        if not (extent.x0 >= 0 and extent.y0 >= 0 and extent.x1 <= page.x1
                and extent.y1 <= page.y1):
            problems.append(f"{name!r} leaves the page")
    return problems


def long_spec(tmp_path):
    """Forty boxes: too many for one row of legible labels."""
    blocks = [[64] * 4, [128] * 4, [256] * 6, [512] * 6, [512] * 6]
    text = ("name: long\ninput: {shape: [224, 224, 3]}\nblocks:\n"
            + "".join(f"  - [{', '.join(map(str, b))}, max]\n" for b in blocks)
            + "  - [512, 512, 512, 512, none]\n"
            + "head: {type: dense, units: [4096, 4096], classes: 1000, activation: softmax}\n")
    path = tmp_path / "long.yaml"
    path.write_text(text)
    return vggspec.plan(path)


@pytest.mark.parametrize("path", ARCHS, ids=lambda p: p.stem)
def test_every_text_is_readable_in_a_seven_inch_column_and_nothing_collides(path):
    p = vggspec.plan(path)
    figure = render_diagram(p)
    boxes = diagram_boxes(p)
    width = figure.get_size_inches()[0]
    found = texts(figure)
    # title, one label per box, the captions, and the legend
    assert len(found) == (1 + len(boxes) + sum(bool(b.caption) for b in boxes)
                          + len({b.kind for b in boxes}))
    small = [(t.get_text(), t.get_fontsize()) for t in found
             if t.get_fontsize() * COLUMN / width < 7]
    assert small == []
    assert collisions(figure) == []
    lines = {round(t.get_position()[1], 6) for t in found
             if t.get_va() == "top" and t.get_rotation() == 0}
    assert len(lines) == 2  # one row of boxes: the title's line and the captions' line


def test_vgg16_says_exactly_what_the_classic_figure_says():
    figure = render_diagram(vggspec.plan(ROOT / "archs" / "vgg16.yaml"))
    assert [t.get_text() for t in texts(figure)] == VGG16_TEXTS
    assert tuple(figure.get_size_inches())[0] == FIGURE_WIDTH == 7.0
    # Front faces: their heights follow the square root of the maps' sizes, so a
    # 224x224 conv is drawn four times as tall as a 14x14 one.
    heights = [face.height for face in box_faces(figure)[::3]]
    assert heights[1] / heights[15] == pytest.approx(4.0)
    assert heights[1] / heights[4] == pytest.approx(2 ** 0.5)


def test_a_long_network_wraps_onto_two_rows_with_readable_text(tmp_path):
    p = long_spec(tmp_path)
    figure = render_diagram(p)
    assert len(diagram_boxes(p)) == 40
    found = texts(figure)
    assert min(t.get_fontsize() for t in found) * COLUMN / figure.get_size_inches()[0] >= 7
    assert collisions(figure) == []
    caption_lines = {round(t.get_position()[1], 6) for t in found
                     if t.get_va() == "top" and t.get_rotation() == 0}
    assert len(caption_lines) == 3  # the title's, and one under each row


def test_batch_norm_folds_into_its_conv_and_the_legend_says_so():
    plain, bn = (vggspec.plan(ROOT / "archs" / name) for name in ("vgg16.yaml",
                                                                  "vgg16_bn.yaml"))
    boxes = diagram_boxes(bn)
    assert [b.kind for b in boxes].count("conv_bn") == 13
    assert {"conv", "bn"}.isdisjoint(b.kind for b in boxes)
    assert [b.label for b in boxes if b.kind == "conv_bn"] == [
        b.label for b in diagram_boxes(plain) if b.kind == "conv"]
    assert legend(render_diagram(bn)) == [
        "input", "convolution + batch norm + activation", "pooling",
        "fully connected + activation", "soft-max"]
    assert legend(render_diagram(plain))[1] == "convolution + activation"
    mixed = vggspec.spec_from_text(
        "extends: vgg11\nname: mixed\nblocks:\n  - [{filters: 64, batch_norm: true}, max]\n"
        "  - [128, max]\n  - [256, 256, max]\n  - [512, 512, max]\n  - [512, 512, max]\n")
    assert legend(render_diagram(vggspec.plan(mixed)))[1:3] == [
        "convolution + activation", "convolution + batch norm + activation"]


def test_local_response_norm_stays_a_slab_of_its_own():
    p = vggspec.plan(ROOT / "archs" / "vgg11_lrn.yaml")
    assert [(b.label, b.kind) for b in diagram_boxes(p)][1:4] == [
        ("conv3-64", "conv"), ("LRN", "lrn"), ("maxpool", "pool")]
    assert legend(render_diagram(p))[1:3] == ["convolution + activation",
                                              "local response norm"]


def test_doubled_filters_draw_every_conv_at_least_1_3_times_as_thick(tmp_path):
    base_text = (ROOT / "archs" / "vgg16.yaml").read_text()
    doubled_text = re.sub(r"(?m)^  - \[.*\]$",
                          lambda row: re.sub(r"\d+", lambda n: str(2 * int(n[0])), row[0]),
                          base_text).replace("name: vgg16", "name: vgg16_wide")
    (tmp_path / "vgg16_wide.yaml").write_text(doubled_text)
    base, wide = vggspec.plan(ROOT / "archs" / "vgg16.yaml"), vggspec.plan(
        tmp_path / "vgg16_wide.yaml")
    assert [layer.config["filters"] for layer in wide.layers if layer.kind == "Conv2D"] == [
        2 * layer.config["filters"] for layer in base.layers if layer.kind == "Conv2D"]
    base_convs = [b for b in diagram_boxes(base) if b.kind == "conv"]
    wide_convs = [b for b in diagram_boxes(wide) if b.kind == "conv"]
    assert len(base_convs) == len(wide_convs) == 13
    ratios = [w.thickness / b.thickness for b, w in zip(base_convs, wide_convs)]
    assert min(ratios) >= 1.3
    # Drawn, too: each front face's width over its height, as the eye compares them.
    conv_indices = [i for i, b in enumerate(diagram_boxes(base)) if b.kind == "conv"]
    aspects = [[(face.width / face.height) for face in box_faces(render_diagram(p))[::3]]
               for p in (base, wide)]
    assert min(aspects[1][i] / aspects[0][i] for i in conv_indices) >= 1.3


@pytest.mark.parametrize("theme, background, ink", [("light", "white", "#141414"),
                                                    ("dark", "#181818", "#ebebeb")])
def test_themes_colour_the_page_the_text_and_the_saved_file(theme, background, ink,
                                                            tmp_path):
    p = vggspec.plan(ROOT / "archs" / "vgg11.yaml")
    figure = render_diagram(p, theme=theme)
    assert figure.get_facecolor() == to_rgba(background)
    assert {to_rgba(t.get_color()) for t in texts(figure)} == {to_rgba(ink)}
    path = write_diagram(p, tmp_path / "d.png", theme=theme)
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("RGB"))
    corner = tuple(int(round(255 * c)) for c in to_rgba(background)[:3])
    assert tuple(pixels[0, 0]) == tuple(pixels[-1, -1]) == corner
    assert (pixels == corner).all(axis=2).mean() > 0.5  # mostly background
    assert pixels.std() > 20


def test_an_unknown_theme_names_the_choices_and_writes_nothing(tmp_path):
    p = vggspec.plan(ROOT / "archs" / "vgg11.yaml")
    message = "unknown theme 'sepia'; choose dark or light"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        render_diagram(p, theme="sepia")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        write_diagram(p, tmp_path / "d.png", theme="sepia")
    assert list(tmp_path.iterdir()) == []


def test_png_svg_and_pdf_keep_size_and_text(tmp_path):
    p = vggspec.plan(ROOT / "archs" / "vgg16.yaml")
    width_in, height_in = render_diagram(p).get_size_inches()
    assert (width_in, height_in * 8 % 1) == (7.0, 0.0)  # whole eighths of an inch
    with Image.open(write_diagram(p, tmp_path / "d.png")) as image:
        assert image.size == (1400, height_in * DPI)
    with Image.open(write_diagram(p, tmp_path / "d96.png", dpi=96)) as image:
        assert image.size == (672, height_in * 96)

    svg = write_diagram(p, tmp_path / "d.svg")
    root = ElementTree.parse(svg).getroot()
    assert root.get("width") == "504pt"  # 7 inches
    words = ["".join(element.itertext())
             for element in root.iter("{http://www.w3.org/2000/svg}text")]
    assert words == VGG16_TEXTS

    pdf = write_diagram(p, tmp_path / "d.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-")
    assert b"/FontFile2" in pdf and b"/Type /Font" in pdf  # TrueType embedded, as text
    assert b"/Type3" not in pdf

    # No dates or random ids: the same spec draws the same bytes.
    for name in ("d.png", "d.svg", "d.pdf"):
        again = write_diagram(p, tmp_path / f"again_{name}")
        assert again.read_bytes() == (tmp_path / name).read_bytes(), name


def test_other_suffixes_are_refused_before_drawing(tmp_path):
    p = vggspec.plan(ROOT / "archs" / "vgg11.yaml")
    with pytest.raises(vggspec.InputError) as caught:
        write_diagram(p, tmp_path / "d.jpg")
    assert str(caught.value) == (
        f"{tmp_path}/d.jpg: the file name must end in .png or .svg or .pdf")
    assert list(tmp_path.iterdir()) == []


def test_diagram_labels_use_the_papers_notation():
    boxes = diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg16.yaml"))
    assert [b.label for b in boxes] == (
        ["input 224×224×3"] + ["conv3-64"] * 2 + ["maxpool"] + ["conv3-128"] * 2 + ["maxpool"]
        + ["conv3-256"] * 3 + ["maxpool"] + ["conv3-512"] * 3 + ["maxpool"]
        + ["conv3-512"] * 3 + ["maxpool", "FC-4096", "FC-4096", "FC-1000", "soft-max"])
    assert [b.caption for b in boxes if b.caption] == [
        "112×112×64", "56×56×128", "28×28×256", "14×14×512", "7×7×512", "1000"]


def test_diagram_shows_variants():
    c = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg16_c.yaml"))]
    assert c.count("conv1-256") == 1 and c.count("conv1-512") == 2
    # Batch norm folds into its conv: vgg11_bn has vgg11's boxes, plus its adaptive pool.
    plain = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg11.yaml"))]
    bn = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg11_bn.yaml"))]
    assert bn == plain[:-4] + ["adaptive avgpool 7x7"] + plain[-4:]
    assert "BN" not in bn and len(bn) == 19
    lrn = [b.label for b in diagram_boxes(vggspec.plan(ROOT / "archs" / "vgg11_lrn.yaml"))]
    assert lrn[:3] == ["input 224×224×3", "conv3-64", "LRN"]
    pooled = vggspec.spec_from_text("extends: vgg16\nhead: {type: global_avg}\n")
    assert [b.label for b in diagram_boxes(vggspec.plan(pooled))][-1] == "global avgpool"


def test_diagram_png_and_svg(tmp_path):
    layout = vggspec.plan(ROOT / "archs" / "vgg16.yaml")
    png = write_diagram(layout, tmp_path / "d.png")
    with Image.open(png) as image:
        assert image.width == 1400 and 2 * image.height < image.width  # 7 inches at 200 dpi
        assert np.asarray(image.convert("L")).std() > 20
    svg = write_diagram(layout, tmp_path / "d.svg").read_text()
    assert svg.count(">conv3-512<") == 6 and ">soft-max<" in svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "d.svg"]


def test_diagram_cli_without_tensorflow(tmp_path):
    code = ("import sys, vggspec.cli as c\n"
            f"rc = c.main(['diagram', 'archs/vgg19.yaml', '--out', r'{tmp_path}/v.svg'])\n"
            "print(rc, any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))")
    result = run_python(code)
    assert result.stdout.splitlines()[-1] == "0 False"
    assert (tmp_path / "v.svg").read_text().count(">conv3-512<") == 8
    bad = run_cli("diagram", "archs/vgg19.yaml", "--out", str(tmp_path / "v.jpg"))
    assert (bad.returncode, bad.stderr.strip()) == (
        2, f"{tmp_path}/v.jpg: the file name must end in .png or .svg or .pdf")
    clash = run_cli("diagram", "archs/vgg19.yaml", "--out", str(tmp_path / "v.svg"),
                    "--format", "pdf")
    assert (clash.returncode, clash.stderr.strip()) == (
        2, f"--format pdf and --out {tmp_path}/v.svg disagree; give one of them")
    dark = run_cli("diagram", "vgg11", "--format", "pdf", "--theme", "dark",
                   cwd=tmp_path)
    assert (dark.returncode, dark.stdout.strip()) == (0, "wrote vgg11.pdf")
    assert (tmp_path / "vgg11.pdf").read_bytes().startswith(b"%PDF-")

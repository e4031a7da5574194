"""The `vggspec` command: parses arguments, calls the library, maps errors to exit codes.

Exit codes: 0 success; 1 an invalid spec; 2 a usage error or a file, path, image or
weights file that cannot be used; 130 interrupted.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from pathlib import Path

from . import __version__
from .errors import (EXIT_INVALID_SPEC, EXIT_OK, EXIT_UNUSABLE_INPUT, MAX_PATH, InputError,
                     SpecError, UsageError, clip, printable, quote)
from .plan import GIB

EPILOG = """exit codes: 0 success, 1 invalid spec, 2 usage error or a file that cannot be
used (missing, unreadable, wrong format), 130 interrupted. Add --debug to see a traceback."""
SPEC_HELP = "spec file (YAML), or a shipped spec's name such as vgg16 (see vggspec list)"


_started: list[str] = []


def _check_backend() -> None:
    """The Keras backend is one we run on and is installed: checked first, before a
    command prints anything."""
    from .backends import backend, require

    require(backend())


def _start_backend(args, name: str | None = None) -> None:
    """Start Keras and its backend with their C++ start-up notes silenced, once, and say
    where the model runs (``vgg16 on jax, NVIDIA H200``) before anything slow happens."""
    from .backends import start

    if not _started:
        _started.append(start(quiet=not args.debug))
    if name and len(_started) == 1:
        print(f"{printable(name)} on {_started[0]}", file=sys.stderr, flush=True)
        _started.append(name)


class _Formatter(argparse.HelpFormatter):
    """Descriptions and epilogs filled to the terminal's width, paragraph by paragraph,
    except lines indented by two spaces (examples), which stay as written."""

    def _fill_text(self, text, width, indent):
        import textwrap

        paragraphs = []
        for paragraph in text.split("\n\n"):
            lines = paragraph.splitlines()
            if any(line.startswith("  ") for line in lines):
                paragraphs.append("\n".join(indent + line for line in lines))
            else:
                paragraphs.append(textwrap.fill(" ".join(lines), width, initial_indent=indent,
                                                subsequent_indent=indent))
        return "\n\n".join(paragraphs)


class _Parser(argparse.ArgumentParser):
    """argparse, with what it echoes from the command line escaped: an argument such as
    $'--\\x1b]0;owned\\x07' must not reach the terminal raw."""

    def error(self, message: str):
        self.print_usage(sys.stderr)
        self.exit(EXIT_UNUSABLE_INPUT, f"{self.prog}: error: {printable(message)}\n")


def _count(most: int):
    """An argparse type: a whole number from 1 to ``most``."""
    def parse(text: str) -> int:
        digits = text.strip()
        value = int(digits) if digits.isascii() and digits.isdigit() and len(digits) < 10 \
            else 0
        if not 1 <= value <= most:
            raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {most:,}, "
                                             f"got {printable(repr(text))}")
        return value
    return parse


def _gib(text: str) -> float:
    """An argparse type for a size limit in GiB: a number of at least 0; 0 or inf mean
    no limit."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if math.isnan(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a number of GiB, at least 0 (0 or inf: "
                                         f"no limit), got {printable(repr(text))}")
    return value


def _colour_map(name: str) -> str:
    from .render import colormap

    try:
        colormap(name)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return name


class _Taps(argparse.Action):
    """--taps block1,block3_conv3: comma-separated taps, gathered over every --taps.

    --taps takes one value and what follows it is images, so that ``features SPEC --taps
    block1,block2 IMAGE`` reads IMAGE as an image. Only after an image, and when its
    first value has no comma, does --taps go on taking taps up to the next option, as
    it always did: ``features SPEC IMAGE --taps block1 block2``."""

    def __call__(self, parser, namespace, values, option_string=None):
        given = getattr(namespace, "images", None)  # set once argparse has read them
        spilled = getattr(namespace, "spilled_images", None) or []
        if (given or spilled) and "," not in values[0]:
            taps, images = values, []
        else:
            taps, images = values[:1], values[1:]
        names = [name.strip() for value in taps for name in value.split(",")]
        names = [name for name in names if name]
        if not names:
            raise argparse.ArgumentError(self, "give at least one tap, such as block1 or "
                                               "block1,block3_conv3")
        setattr(namespace, self.dest, [*(getattr(namespace, self.dest, None) or []), *names])
        if given:
            # argparse has read the images already and will not set them again.
            namespace.images = [*given, *images]
        else:
            namespace.spilled_images = [*spilled, *images]


def _gather_images(args, parser: argparse.ArgumentParser) -> None:
    """The images of `features`: those --taps passed on (which came first), then the
    rest; a usage error if there are none."""
    spilled = getattr(args, "spilled_images", None) or []
    args.spilled_images = spilled
    args.images = [*spilled, *(args.images or [])]
    if not args.images:
        parser.error("the following arguments are required: IMAGE")


def _check_spilled_images(args) -> None:
    """An image that --taps passed on, that is no file but looks like a tap, was meant as
    one: say how to write several taps."""
    for value in args.spilled_images:
        if re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", value) and not os.path.lexists(value):
            taps = ",".join([*args.taps, value])
            raise UsageError(f"{clip(value)}: no such file (before the images, --taps takes "
                             f"one value: write several taps comma-separated, --taps "
                             f"{clip(taps, MAX_PATH)})")


def _check_taps(layout, taps: list[str] | None) -> None:
    """Every tap names a layer; a tap that is a file was meant as an image."""
    from .names import tap_targets

    try:
        layout.tap_layers(taps)
    except UsageError as error:
        targets = tap_targets(layer.name for layer in layout.layers)
        files = [tap for tap in taps or () if tap not in targets and os.path.isfile(tap)]
        if not files:
            raise
        raise UsageError(f"{error} ({quote(files[0])} is a file: put the images before "
                         f"--taps)") from None


def _check_weights(path: str | None, spec, args) -> str | None:
    """The weights file to load, checked now, not after the model is built: a published
    name ("imagenet") is fetched (or found in Keras' cache) first; a path must be there."""
    if not path:
        return None
    from .sources import check_readable, fetch, resolve

    source = resolve(path, spec.name, spec.head.type)
    if source is not None:
        check_readable(source)
        _start_backend(args)  # get_file imports Keras: its start-up notes are not ours
        return str(fetch(source))
    from ._files import read_start

    read_start(path, 0, "weights file")
    return path


def _weights_preprocessing(weights: str | None, spec) -> str | None:
    """The preprocessing published weights expect (caffe for Keras', torch for
    torchvision's), said on stderr; None for none or a file."""
    if not weights:
        return None
    from .sources import resolve

    source = resolve(weights, spec.name, spec.head.type)
    if source is None:
        return None
    print(f"preprocessing: {source.preprocessing}, as {source.publisher}'s weights expect "
          f"(--preprocess overrides)", file=sys.stderr)
    return source.preprocessing


def _bytes(gib: float) -> int | None:
    """A --max-...-gib value in bytes; None (no limit) for 0 and inf."""
    limit = gib * GIB
    # 1e300 GiB is no limit in practice, and int() of its overflow would raise.
    return None if gib == 0 or not math.isfinite(limit) or limit >= 2 ** 62 else int(limit)


def _limit_bytes(args) -> int | None:
    return _bytes(args.max_weight_gib)


def _add_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-weight-gib", type=_gib, default=4.0, metavar="GIB",
                        help="refuse specs whose float32 weights exceed this many GiB "
                             "(default 4; 0 or inf for no limit)")


def _add_cache_limit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--max-cache-gib", type=_gib, default=4.0, metavar="GIB",
                        help="most memory the decoded images may take, as uint8 (default "
                             "4; 0 or inf for no limit)")


def spec_argument(text: str) -> str:
    """The spec file a command-line argument names: the argument itself, or, for a name
    with no '/' and no .yaml or .yml ending that is no file here, the shipped spec of
    that name (``vgg16``: archs/vgg16.yaml). A file here wins over a shipped spec (a
    folder does not). Raises UsageError for a name that is neither."""
    from .spec import SPEC_SUFFIXES

    if not text or "/" in text or os.sep in text or text.lower().endswith(SPEC_SUFFIXES):
        return text
    try:
        folder = os.path.isdir(text) if os.stat(text) else None
    except FileNotFoundError:
        folder = None
    except (OSError, ValueError):  # a NUL, a name too long: the loader says which
        return text
    if folder is False:
        return text
    from .extends import shipped_specs

    shipped = shipped_specs()
    if text in shipped:
        return str(shipped[text])
    if folder:
        return text
    raise UsageError(f"{clip(text, MAX_PATH)}: no such file (and no shipped spec named "
                     f"{quote(text)}; see vggspec list)")


def _is_folder(entry: os.DirEntry) -> bool:
    """A folder; a link loop or a dangling link is not (validate says what it is)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _validate_targets(argument: str) -> list[tuple[str, str]]:
    """(name to show, path) of each spec an argument of validate names: a folder's
    *.yaml and *.yml files, sorted (not its subfolders'), or the one spec it names."""
    from .spec import SPEC_SUFFIXES

    if os.path.isdir(argument):
        try:
            with os.scandir(argument) as entries:
                names = sorted(entry.name for entry in entries
                               if entry.name.lower().endswith(SPEC_SUFFIXES)
                               and not _is_folder(entry))
        except OSError as error:
            raise InputError(f"{clip(argument, MAX_PATH)}: cannot read the folder: "
                             f"{error.strerror or error}") from None
        if not names:
            raise InputError(f"{clip(argument, MAX_PATH)}: no .yaml or .yml files in this "
                             f"folder")
        return [(os.path.join(argument, name), os.path.join(argument, name))
                for name in names]
    return [(argument, spec_argument(argument))]


def cmd_validate(args) -> int:
    worst = EXIT_OK
    for argument in args.files:
        try:
            targets = _validate_targets(argument)
        except (InputError, UsageError) as error:
            print(error, file=sys.stderr)
            worst = max(worst, EXIT_UNUSABLE_INPUT)
            continue
        for file, path in targets:
            worst = max(worst, _validate_one(args, file, path))
    return worst


def _validate_one(args, file: str, path: str) -> int:
    """Check one spec (``path``, shown as ``file``) and print the verdict; returns its
    exit code."""
    from .plan import plan

    try:
        spec = plan(path, _limit_bytes(args)).spec  # every check, in one run
    except SpecError as error:
        print(error)
        return EXIT_INVALID_SPEC
    except (InputError, UsageError) as error:
        print(error, file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    if args.resolved:
        import yaml

        print(f"# {printable(file)}, resolved: every default written, extends merged")
        print(yaml.safe_dump(spec.to_dict(), sort_keys=False, default_flow_style=None,
                             width=100),
              end="")
    else:
        print(f"{printable(file)}: ok")
    return EXIT_OK


def cmd_summary(args) -> int:
    from .plan import plan

    layout = plan(spec_argument(args.file), _limit_bytes(args))
    print(layout.to_json() if args.json else layout)
    return EXIT_OK


def cmd_diff(args) -> int:
    from .compare import format_diff
    from .plan import plan

    before = plan(spec_argument(args.a), _limit_bytes(args))
    after = plan(spec_argument(args.b), _limit_bytes(args))
    print(format_diff(before, after, changed_only=args.changed_only))
    return EXIT_OK


def cmd_list(args) -> int:
    from .catalogue import catalogue, format_catalogue

    entries = catalogue()
    print(format_catalogue(entries))
    return EXIT_INVALID_SPEC if any(params is None for _, params, _ in entries) else EXIT_OK


def _tap_shapes(features) -> list[str]:
    """`block1: (1, 112, 112, 64)` for each tap: the shape for one image."""
    return [f"{tap}: {(1, *tuple(tensor.shape)[1:])}" for tap, tensor in features.output.items()]


def cmd_build(args) -> int:
    from ._files import check_output_file
    from .plan import plan

    _check_backend()
    if args.save:
        check_output_file(args.save, (".keras",))
    layout = plan(spec_argument(args.spec), _limit_bytes(args))
    weights = _check_weights(args.weights, layout.spec, args)
    print(f"building {layout.spec.name}: {layout.params:,} parameters "
          f"({layout.weight_bytes / GIB:.2f} GiB float32)", file=sys.stderr, flush=True)
    _start_backend(args, layout.spec.name)
    from .builder import build_model, feature_model
    from .weights import save_model

    model = build_model(layout, weights=weights, max_weight_bytes=None,
                        partial=args.partial)
    if args.weights and args.partial:
        report = model.load_report
        print(f"loaded {len(report.loaded)} layers from {printable(args.weights)}"
              + (f"; left initialised: {printable('; '.join(report.skipped))}"
                 if report.skipped else ""), file=sys.stderr)
    model.summary()
    for line in _tap_shapes(feature_model(model, layout.spec.taps)):
        print(line)
    if args.save:
        print(f"saved {printable(str(save_model(model, args.save)))}")
    return EXIT_OK


def cmd_export(args) -> int:
    from .backends import require
    from .export import FORMATS, check_converter, check_export_path, check_exportable
    from .plan import plan

    require("tensorflow", "vggspec export converts through TensorFlow (model.export), so "
                          "it needs TensorFlow")
    from .backends import backend

    if backend() != "tensorflow":
        raise UsageError(f"vggspec export is tested on the TensorFlow backend only; run it "
                         f"with KERAS_BACKEND=tensorflow (the backend is {backend()})")

    # Everything that can be wrong fails before TensorFlow starts or the model is built.
    check_export_path(args.out, args.format)
    check_converter(args.format, load=False)
    layout = plan(spec_argument(args.spec), _limit_bytes(args))
    check_exportable(layout, args.format)
    weights = _check_weights(args.weights, layout.spec, args)  # last: it may download
    print(f"building {layout.spec.name}: {layout.params:,} parameters "
          f"({layout.weight_bytes / GIB:.2f} GiB float32)", file=sys.stderr, flush=True)
    _start_backend(args, layout.spec.name)
    from .builder import build_model
    from .export import export_model

    model = build_model(layout, weights=weights, max_weight_bytes=None)
    # The converters' C++ notes (TensorFlow Lite's, tf2onnx's) are not for our users;
    # their errors arrive as exceptions, printed once stderr is back.
    from .backends import native_stderr_silenced

    with native_stderr_silenced(not args.debug):
        written = export_model(model, args.out, args.format)
    folder = "/" if FORMATS[args.format].suffix is None else ""
    print(f"wrote {printable(str(written))}{folder}")
    return EXIT_OK


def _progress(done: int, total: int) -> None:
    if total <= 4:
        return
    if sys.stderr.isatty():
        filled = round(30 * done / total)
        print(f"\r[{'#' * filled}{'.' * (30 - filled)}] {done}/{total} images", end="",
              file=sys.stderr, flush=True)
        if done == total:
            print(file=sys.stderr)
    else:
        print(f"{done}/{total} images", file=sys.stderr, flush=True)


def cmd_features(args) -> int:
    from ._files import check_output_dir
    from .features import check_preprocessing, default_preprocessing, list_images
    from .plan import plan

    _check_backend()
    # Everything that can be wrong with the inputs fails before any folder is made.
    _check_spilled_images(args)
    images = list_images(args.images)
    layout = plan(spec_argument(args.spec), _limit_bytes(args))
    _check_taps(layout, args.taps)
    channels = layout.spec.input_shape[2]
    preprocessing = args.preprocess or _weights_preprocessing(args.weights, layout.spec) \
        or default_preprocessing(channels)
    check_preprocessing(preprocessing, channels)
    weights = _check_weights(args.weights, layout.spec, args)  # last: it may download
    check_output_dir(args.out)
    _start_backend(args, layout.spec.name)
    _seed(args)
    from .pipeline import extract_features
    from .render import Style

    style = Style(cmap=args.cmap, theme=args.theme, scale=args.scale, format=args.format)
    try:
        report = extract_features(
            layout, images, args.out, weights=weights, taps=args.taps,
            batch_size=args.batch_size, resize=args.resize, preprocessing=preprocessing,
            png=not args.no_png, npz=args.npz, max_channels=args.max_channels,
            progress=_progress, max_weight_bytes=_limit_bytes(args),
            max_activation_bytes=_bytes(args.max_activation_gib), precision=args.precision,
            style=style)
    except KeyboardInterrupt as interrupt:
        report = getattr(interrupt, "report", None)
        done = [printable(str(path)) for path, _ in report.done] if report else []
        total = report.images if report else len(images)
        print(f"interrupted after {len(done)} of {total} images"
              + (f"; done: {', '.join(done)}" if done else ""), file=sys.stderr)
        return 130
    for warning in report.warnings:
        print(f"warning: {printable(warning)}", file=sys.stderr)
    for tap, shape in report.tap_shapes.items():
        print(f"{tap}: {shape}")
    for path, folder in report.done:
        print(f"{printable(str(path))} -> {printable(str(folder))}/")
    for path, reason in report.failed:
        print(f"failed: {printable(reason)}", file=sys.stderr)
    if report.failed:
        print(f"{len(report.failed)} of {report.images} images failed", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return EXIT_OK


def _seed(args) -> None:
    """Seed Keras before a build, so layers that no weights file fills start the same
    way each run (--seed): the same pictures from the same command."""
    from .backends import quiet_keras

    quiet_keras().utils.set_random_seed(args.seed)


def _seed_number(text: str) -> int:
    digits = text.strip()
    if not (digits.isascii() and digits.isdigit() and len(digits) < 11
            and int(digits) < 2 ** 31):
        raise argparse.ArgumentTypeError(f"must be a whole number from 0 to 2147483647, got "
                                         f"{printable(repr(text))}")
    return int(digits)


def _share(text: str) -> float:
    """An argparse type for --val-split: a number from 0 up to (not including) 1."""
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be a share at least 0 and below 1 (0.2 holds "
                                         f"out a fifth), got {printable(repr(text))}")
    return value


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value <= 10:
        raise argparse.ArgumentTypeError(f"must be a number above 0 and at most 10, got "
                                         f"{printable(repr(text))}")
    return value


def cmd_train(args) -> int:
    from .backends import require
    from .plan import plan
    from .training import TrainingInterrupted, prepare, run_training

    require("tensorflow", "vggspec train reads images with tf.data and distributes with "
                          "tf.distribute, so it needs TensorFlow")
    _check_backend()

    if args.partial and not args.weights:
        raise UsageError("--partial needs --weights")
    if args.val and args.val_split is not None:
        raise UsageError("give --val or --val-split, not both")
    layout = plan(spec_argument(args.spec), _limit_bytes(args))
    overrides = {"epochs": args.epochs, "batch_size": args.batch_size, "seed": args.seed,
                 "val_split": args.val_split, "learning_rate": args.learning_rate,
                 "optimizer": args.optimizer, "precision": args.precision,
                 "preprocess": args.preprocess, "resize": args.resize}
    spec_preprocess = layout.spec.train.preprocess if layout.spec.train else None
    from_weights = _weights_preprocessing(args.weights, layout.spec) \
        if args.weights and not (args.preprocess or spec_preprocess) else None
    prepared = prepare(layout, args.data, args.out, val=args.val, partial=args.partial,
                       resume=args.resume, classes_from_data=args.classes_from_data,
                       preprocess_from_weights=from_weights,
                       max_cache_bytes=_cache_bytes(args),
                       max_weight_bytes=_limit_bytes(args) or 0, **overrides)
    prepared.weights = _check_weights(args.weights, layout.spec, args)  # last: may download
    settings = prepared.settings
    if prepared.spec.head.classes != layout.spec.head.classes:
        print(f"classes: {prepared.spec.head.classes}, from the class folders"
              + (f" (the spec says {layout.spec.head.classes})" if layout.spec.head.classes
                 else ""), file=sys.stderr)
    print(f"training {prepared.spec.name} for {settings.epochs} "
          f"epoch{'s' * (settings.epochs != 1)}, batch "
          f"{settings.batch_size}, {settings.optimizer} at {settings.learning_rate:g} "
          f"({settings.schedule}), seed {settings.seed}"
          + (f", resuming after epoch {prepared.state['epochs_done']}" if prepared.state
             else ""), file=sys.stderr, flush=True)
    _start_backend(args, prepared.spec.name)
    try:
        result = run_training(prepared, progress_bar=sys.stdout.isatty())
    except TrainingInterrupted as interrupt:
        print(interrupt.message, file=sys.stderr)
        return 130
    metrics = result.metrics
    if metrics:
        top5 = f", top-5 {metrics['top5_accuracy']:.4f}" if "top5_accuracy" in metrics else ""
        if metrics["set"] == "validation":
            print(f"best: epoch {result.best_epoch}, validation accuracy "
                  f"{metrics['accuracy']:.4f}{top5}")
        else:
            print(f"best: epoch {result.best_epoch} by training accuracy (no validation "
                  f"images); its accuracy on the training images, in inference mode: "
                  f"{metrics['accuracy']:.4f}{top5}")
        print(f"wrote {printable(str(result.run))}/: best.keras, last.keras, history.csv, "
              f"curves.png, confusion.png, metrics.json, spec.yaml, state.json, logs/")
    return _list_failed(result.failed, "images")


def _list_failed(failed: list[str], what: str) -> int:
    for reason in failed:
        print(f"skipped: {printable(reason)}", file=sys.stderr)
    if failed:
        print(f"{len(failed)} {what if len(failed) != 1 else what[:-1]} could not be read and "
              f"{'were' if len(failed) != 1 else 'was'} skipped", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT
    return EXIT_OK


def _cache_bytes(args) -> int:
    """--max-cache-gib in bytes: 0 for no limit (0 or inf), at least 1 otherwise."""
    limit = _bytes(args.max_cache_gib)
    return 0 if limit is None else max(1, limit)


def cmd_evaluate(args) -> int:
    from .evaluation import format_report
    from .training import check_evaluation, evaluate

    _check_backend()
    # Everything that can be wrong fails before TensorFlow starts.
    check_evaluation(args.model, args.data, args.out, _cache_bytes(args))
    _start_backend(args, Path(args.model).name)
    result = evaluate(args.model, args.data, batch_size=args.batch_size, out=args.out,
                      max_cache_bytes=_cache_bytes(args))
    print(format_report(result))
    if args.out:
        print(f"wrote {printable(str(Path(args.out) / 'metrics.json'))}, "
              f"{printable(str(Path(args.out) / 'confusion.png'))}")
    return _list_failed(result["failed"], "images")


def cmd_embed(args) -> int:
    from .embed import check_destination, embed
    from .features import check_preprocessing, default_preprocessing, list_images
    from .plan import plan

    _check_backend()
    # Everything that can be wrong with the inputs fails before TensorFlow starts.
    list_images(args.images)
    layout = plan(spec_argument(args.spec), _limit_bytes(args))
    tap = args.tap or layout.spec.taps[-1]
    _check_taps(layout, [tap])
    channels = layout.spec.input_shape[2]
    preprocessing = args.preprocess or _weights_preprocessing(args.weights, layout.spec) \
        or default_preprocessing(channels)
    check_preprocessing(preprocessing, channels)
    check_destination(layout.spec, args.out, tap=tap, pool=args.pool, weights=args.weights,
                      resize=args.resize, preprocessing=preprocessing,
                      precision=args.precision)
    weights = _check_weights(args.weights, layout.spec, args)  # last: it may download
    _start_backend(args, layout.spec.name)
    try:
        report = embed(layout, args.images, args.out, tap=tap, pool=args.pool,
                       weights=weights, batch_size=args.batch_size,
                       shard_rows=args.shard_rows, workers=args.workers, resize=args.resize,
                       preprocessing=preprocessing, precision=args.precision,
                       draft=not args.no_draft, progress=_progress)
    except KeyboardInterrupt as interrupt:
        report = getattr(interrupt, "report", None)
        kept = f"{report.written:,} vectors in {len(report.shards)} new shards kept; " \
            if report else ""
        print(f"interrupted: {kept}run the same command again to go on", file=sys.stderr)
        return 130
    if report.skipped:
        print(f"{report.skipped:,} images already embedded in {printable(str(Path(args.out)))}/, "
              f"skipped",
              file=sys.stderr)
    if report.written:
        how = "flattened" if args.pool == "none" else f"{args.pool} pool"
        print(f"wrote {report.written:,} vector{'s' * (report.written != 1)} of "
              f"{report.length:,} ({tap}, {how}) in {len(report.shards)} "
              f"shard{'s' * (len(report.shards) != 1)} to {printable(str(Path(args.out)))}/")
    elif not report.failed:
        print(f"nothing new to embed: every image is in {printable(str(Path(args.out)))}/ already")
    return _list_failed([reason for _, reason in report.failed], "images")


def _model_or_spec(args) -> tuple[str, bool]:
    """(the SPEC_OR_MODEL argument, whether it is a trained model): a run folder (one
    holding best.keras) or .keras file as it is, anything else as a spec argument (so a
    folder named vgg16 does not hide the shipped spec). A trained model carries its
    weights, so --weights with one is refused."""
    text = args.source
    run = os.path.isdir(text) and os.path.isfile(os.path.join(text, "best.keras"))
    if not (text.endswith(".keras") or run):
        return spec_argument(text), False
    if args.weights:
        raise UsageError(f"{clip(text, MAX_PATH)} is a trained model, which carries its "
                         f"weights; --weights is for specs")
    return text, True


def cmd_predict(args) -> int:
    from ._files import check_output_dir
    from .features import list_images
    from .predict import check_source, class_index

    _check_backend()
    # Everything that can be wrong with the inputs fails before TensorFlow starts.
    from .pipeline import _unique

    images, repeats = _unique(list_images(args.images))
    argument, model_file = _model_or_spec(args)
    for option, value in (("--class", args.class_name), ("--cam-layer", args.cam_layer)):
        if value is not None and not args.cam:
            raise UsageError(f"{option} is about the Grad-CAM map: add --cam")
    if model_file:
        source = check_source(argument, labels=args.labels, preprocess=args.preprocess,
                              resize=args.resize)
    else:
        from .plan import plan

        layout = plan(argument, _limit_bytes(args))
        source = check_source(layout, labels=args.labels, preprocess=args.preprocess,
                              resize=args.resize,
                              weights_preprocess=_weights_preprocessing(args.weights,
                                                                        layout.spec))
    if args.cam_layer and source.plan is not None:
        from .attribution import check_conv_layer

        check_conv_layer(source.plan, args.cam_layer, "--cam-layer")
    wanted = class_index(source, args.class_name) if args.class_name is not None else None
    weights = None if model_file else _check_weights(args.weights, layout.spec, args)
    if args.cam:  # made last, so that a refusal above leaves no empty folder
        check_output_dir(args.out)
    for note in repeats:
        print(f"warning: {note}", file=sys.stderr)
    _start_backend(args, source.name)
    _seed(args)
    untrained = not model_file and not weights
    if untrained:
        _untrained_note(args, source.name)
    from .predict import load_model, predict

    model = load_model(source, weights)
    cams = None
    if args.cam:
        from .attribution import GradCam

        cams = GradCam(model, args.cam_layer)
    top = min(args.top, source.classes)
    written: list[str] = []
    names = _cam_names(images)

    def each(batch) -> None:
        for prediction in batch:
            print(f"{printable(str(prediction.path))}: " + ", ".join(
                f"{printable(name)} {probability:.3f}" for _, name, probability
                in prediction.top), flush=True)
        if cams is not None:
            written.extend(_write_cams(cams, source, batch, wanted, args, names, untrained))

    report = predict(source, model, images, top=top, batch_size=args.batch_size,
                     # In a terminal the printed lines are the progress.
                     progress=None if sys.stdout.isatty() else _progress, each=each)
    if written:
        print(f"wrote {len(written)} Grad-CAM picture{'s' * (len(written) != 1)} "
              f"({cams.layer}) to {printable(str(Path(args.out)))}/", file=sys.stderr)
    return _list_failed([reason for _, reason in report.failed], "images")


def _cam_names(images: list[Path]) -> dict[Path, str]:
    """Each image's picture name: its stem made safe, numbered where stems repeat."""
    from .pipeline import folder_names

    return dict(zip(images, folder_names(images)))


def _write_cams(cams, source, batch, wanted, args, names, untrained: bool) -> list[str]:
    """Grad-CAM pictures of one batch's predictions, written to --out."""
    import numpy as np

    from .features import preprocess
    from .render import cam_picture, write_picture

    pixels = np.stack([prediction.image for prediction in batch])
    maps, classes, _ = cams(preprocess(pixels, source.preprocess),
                            None if wanted is None else [wanted] * len(batch))
    written = []
    for prediction, heat, index in zip(batch, maps, classes):
        title = (f"{source.class_names[index]}  p={prediction.probabilities[index]:.3f}  "
                 f"Grad-CAM at {cams.layer}" + ("  (untrained)" if untrained else ""))
        path = Path(args.out) / f"{names[prediction.path]}.{args.format}"
        write_picture(cam_picture(prediction.image, heat, title, args.theme), path)
        written.append(str(path))
    return written


def _filter_list(text: str) -> list[int]:
    """An argparse type for --filters: filter numbers, comma-separated (0,5,9)."""
    parts = [part.strip() for part in text.split(",")]
    if not parts or not all(part.isascii() and part.isdigit() and len(part) < 7
                            for part in parts):
        raise argparse.ArgumentTypeError(f"must be filter numbers separated by commas, such "
                                         f"as 0,5,9; got {printable(repr(text))}")
    return [int(part) for part in parts]


def cmd_filters(args) -> int:
    from ._files import check_output_file
    from .attribution import check_conv_layer
    from .features import check_preprocessing, default_preprocessing

    _check_backend()
    argument, model_file = _model_or_spec(args)
    if model_file:
        from .predict import check_source

        source = check_source(argument, preprocess=args.preprocess)
        name, layout, preprocessing = source.name, source.plan, source.preprocess
    else:
        from .plan import plan

        layout = plan(argument, _limit_bytes(args))
        name, channels = layout.spec.name, layout.spec.input_shape[2]
        preprocessing = args.preprocess or _weights_preprocessing(args.weights, layout.spec) \
            or default_preprocessing(channels)
        check_preprocessing(preprocessing, channels)
    has = None  # the layer's filter count, where a plan says it before anything is built
    if layout is not None:
        check_conv_layer(layout, args.layer)
        has = layout.layer(args.layer).config["filters"]
    wanted = args.filters or args.count or min(16, has or 16)
    if has is not None:
        from .filters import chosen_filters

        chosen_filters(wanted, args.layer, has)
    if args.out and args.format and Path(args.out).suffix.lower() != f".{args.format}":
        raise UsageError(f"--format {args.format} and --out {clip(args.out, MAX_PATH)} "
                         f"disagree; give one of them")
    out = args.out or f"{name}_{args.layer}.{args.format or 'png'}"
    check_output_file(out, (".png", ".svg", ".pdf"))
    weights = None if model_file else _check_weights(args.weights, layout.spec, args)
    _start_backend(args, name)
    _seed(args)
    if not model_file and not weights:
        _untrained_note(args, name)
    import time

    from .filters import filter_patterns
    from .render import tiles_picture, write_picture

    if model_file:
        from .predict import load_model

        model = load_model(source)
    else:
        from .builder import build_model

        model = build_model(layout.up_to([args.layer]), weights=weights, max_weight_bytes=None)
    started = time.perf_counter()
    patterns = filter_patterns(model, args.layer, wanted, size=args.size,
                               steps=args.steps, seed=args.seed, preprocess=preprocessing)
    seconds = time.perf_counter() - started
    shown = patterns.filters
    numbers = (f"{shown[0]}-{shown[-1]}" if shown == list(range(shown[0], shown[-1] + 1))
               else ",".join(map(str, shown)))
    title = (f"{name} {patterns.layer}, filters {numbers}: {args.steps} steps of gradient "
             f"ascent, seed {args.seed}" + ("" if model_file or weights else " (untrained)"))
    written = write_picture(tiles_picture(patterns.images, shown, title, args.theme), out)
    import numpy as np

    print(f"wrote {printable(str(written))}: {len(shown)} filter{'s' * (len(shown) != 1)} of "
          f"{patterns.layer} in {seconds:.1f} s; the filters' mean responses rose from a "
          f"median of {float(np.median(patterns.initial_activation)):.3g} to "
          f"{float(np.median(patterns.activation)):.3g}")
    return EXIT_OK


def cmd_diagram(args) -> int:
    from ._files import check_output_file
    from .diagram import write_diagram
    from .plan import plan

    spec = spec_argument(args.spec)
    out = args.out or f"{Path(spec).stem}.{args.format or 'png'}"
    if args.out and args.format and Path(out).suffix.lower() != f".{args.format}":
        raise UsageError(f"--format {args.format} and --out {clip(out, MAX_PATH)} disagree; "
                         f"give one of them")
    check_output_file(out, (".png", ".svg", ".pdf"))
    layout = plan(spec, _limit_bytes(args))
    try:
        written = write_diagram(layout, out, theme=args.theme)
    except InputError:
        raise
    except OSError as error:
        raise InputError(f"{out}: cannot write: {error.strerror or error}") from None
    print(f"wrote {printable(str(written))}")
    return EXIT_OK


def cmd_schema(args) -> int:
    from .spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_new(args) -> int:
    from .starter import new_spec

    written = new_spec(args.file, base=args.base, force=args.force)
    print(f"wrote {printable(str(written))} (extends {args.base}); open it in an editor with "
          f"the YAML language server for completion")
    return EXIT_OK


def _add_picture_options(parser, theme: str, format_default: str | None = "png") -> None:
    parser.add_argument("--theme", choices=("dark", "light"), default=theme,
                        help=f"dark or light background (default {theme}; light suits print)")
    parser.add_argument("--format", choices=("png", "svg", "pdf"), default=format_default,
                        help="picture format (default png"
                             + ("" if format_default else ", or --out's ending")
                             + "); in svg and pdf the text stays text, for papers and slides")


def _untrained_note(args, name: str) -> None:
    """Say so when a spec runs on its seeded starting weights: its classes, maps and
    patterns show the mechanics, not anything learned."""
    print(f"no --weights: {name} has its seeded starting weights (--seed {args.seed}), so "
          f"what it shows is the mechanics, not learned features", file=sys.stderr)


def _add_seed(parser) -> None:
    parser.add_argument("--seed", type=_seed_number, default=0, metavar="N",
                        help="seed for the starting weights of layers no weights file fills "
                             "(default 0: the same command draws the same pictures)")


def _debug_option() -> argparse.ArgumentParser:
    """--debug for every command, so it works after the command as well as before it.
    Its default is SUPPRESS: a command given no --debug leaves the top-level value."""
    parent = _Parser(add_help=False)
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show a traceback for errors (for reporting bugs)")
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vggspec",
        description="Define, check, build and look inside VGG-family networks from a "
                    "short YAML spec (vggspec list shows the shipped ones).",
        epilog=EPILOG)
    parser.add_argument("--version", action="version", version=f"vggspec {__version__}")
    parser.add_argument("--debug", action="store_true",
                        help="show a traceback for errors (for reporting bugs)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    common = [_debug_option()]

    validate = commands.add_parser(
        "validate", parents=common,
        help="check specs; report every problem as FILE:LINE:COL: PATH: message",
        description="Check each spec against the schema and vggspec's rules and report "
                    "every problem, one per line. A folder stands for the .yaml and .yml "
                    "files in it (sorted; not its subfolders). Exit 0 if all are valid, 1 "
                    "if any is invalid, 2 if a file cannot be read or a folder has no "
                    "specs.", epilog=EPILOG)
    validate.add_argument("files", nargs="+", metavar="FILE",
                          help="spec files (YAML), folders of them, or shipped specs' names "
                               "such as vgg16 (see vggspec list)")
    validate.add_argument("--resolved", action="store_true",
                          help="print each spec as it will be built: extends merged, "
                               "every default written out")
    _add_limit(validate)
    validate.set_defaults(run=cmd_validate)

    summary = commands.add_parser(
        "summary", parents=common,
        help="print every layer's shape, parameters and MACs, without TensorFlow",
        description="Plan the network without building it: one row per layer with its "
                    "Keras name, type, output shape, parameters and multiply-accumulates, "
                    "a subtotal per block, and totals (weights and activation memory).",
        epilog=EPILOG)
    summary.add_argument("file", metavar="FILE", help=SPEC_HELP)
    summary.add_argument("--json", action="store_true",
                         help="print the plan as JSON instead (format vggspec.plan/1: "
                              "name, input_shape, layers with name, kind, config, "
                              "output_shape, params, trainable, non_trainable, macs, block, "
                              "path, and totals; fields are only ever added)")
    _add_limit(summary)
    summary.set_defaults(run=cmd_summary)

    diff = commands.add_parser(
        "diff", parents=common, help="compare two specs layer by layer, without TensorFlow",
        description="Plan two specs and line their layers up by name: + a layer only B "
                    "has, - one only A has, ~ one whose type, settings, output shape, "
                    "parameters or MACs differ (what differs on the line below), with the "
                    "change in parameters and MACs per layer, then both totals and their "
                    "difference. Fits in 100 columns. Exit 0 whether or not they differ.",
        epilog=EPILOG)
    diff.add_argument("a", metavar="A", help=SPEC_HELP)
    diff.add_argument("b", metavar="B", help=SPEC_HELP)
    diff.add_argument("--changed-only", action="store_true",
                      help="leave out the layers that are the same in both")
    _add_limit(diff)
    diff.set_defaults(run=cmd_diff)

    listing = commands.add_parser(
        "list", parents=common, help="list the shipped specs: name, parameters, description",
        description="List the specs that ship with vggspec, which every command takes by "
                    "name (vggspec summary vgg16): one line each with its name, parameter "
                    "count and description (its description field, else the comment that "
                    "opens the file). Exit 1 if a shipped spec does not plan.",
        epilog=EPILOG)
    listing.set_defaults(run=cmd_list)

    build = commands.add_parser(
        "build", parents=common,
        help="build the Keras model, print its summary and each tap's shape",
        description="Build the Keras 3 model a spec describes (layer names as in "
                    "keras.applications), optionally load weights by layer name, print "
                    "the Keras summary and one line per tap with its output shape for one "
                    "image, and optionally save it as a .keras file.", epilog=EPILOG)
    build.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    build.add_argument("--weights", metavar="NAME|PATH",
                       help="weights to load by layer name, all or nothing: imagenet (the "
                            "published ImageNet weights of a shipped spec: Keras' for vgg16 "
                            "and vgg19, torchvision's for the others; downloaded once into "
                            "Keras' cache; VGGSPEC_WEIGHTS_MIRROR sets another address), "
                            "torchvision (torchvision's for all eight), or a file: "
                            ".weights.h5, .keras, or a legacy Keras HDF5 file such as "
                            "vgg16_weights_tf_dim_ordering_tf_kernels.h5")
    build.add_argument("--partial", action="store_true",
                       help="with --weights, for transfer learning: load every layer whose "
                            "name and shapes fit, leave the others (a new head) initialised, "
                            "and say which")
    build.add_argument("--save", metavar="PATH",
                       help="write the model to this .keras file (atomically)")
    _add_limit(build)
    build.set_defaults(run=cmd_build)

    export = commands.add_parser(
        "export", parents=common,
        help="export the model for inference: SavedModel, ONNX or LiteRT",
        description="Build the model a spec describes, optionally load weights, and "
                    "export it for inference with Keras' model.export: a TensorFlow "
                    "SavedModel folder, an ONNX file (needs the tf2onnx package) or a "
                    "LiteRT .tflite file. The batch size stays open. The output appears "
                    "whole or not at all: it is written beside --out under a hidden name "
                    "and renamed into place.", epilog=EPILOG)
    export.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    export.add_argument("--weights", metavar="NAME|PATH", help="weights to load (see build)")
    from .export import FORMATS

    export.add_argument("--format", required=True, choices=tuple(FORMATS),
                        help="; ".join(f"{row.name}: {row.description}"
                                       for row in FORMATS.values()))
    export.add_argument("--out", required=True, metavar="PATH",
                        help="where to write: for savedmodel a folder that does not exist "
                             "yet or is empty; for onnx a file ending .onnx; for litert a "
                             "file ending .tflite")
    _add_limit(export)
    export.set_defaults(run=cmd_export)

    features = commands.add_parser(
        "features", parents=common,
        help="feature-map pictures after every block for each image",
        description="Run images through the network and write, for each image, one picture "
                    "per tap (all channels tiled, numbered and framed, each normalised on "
                    "its own, with a colour bar) and an overview to OUT/<image-stem>/, as "
                    "PNG, SVG or PDF. Folders are expanded to the images in them. Bad images "
                    "are skipped and listed at the end (exit 2). Without --weights the "
                    "network has its seeded starting weights.",
        epilog="examples:\n"
               "  vggspec features vgg16 photo.jpg --weights imagenet --max-channels 36\n"
               "  vggspec features vgg16 photos/ --taps block3_conv3 --format pdf --theme light"
               "\n\n" + EPILOG, formatter_class=_Formatter)
    features.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    images = features.add_argument("images", nargs="+", metavar="IMAGE",
                                   help="image files or folders of images")
    # Checked by _gather_images instead, which counts the images --taps passes on.
    images.required = False
    features.add_argument("--out", default="features", metavar="DIR",
                          help="output folder (default: ./features)")
    features.add_argument("--precision", choices=("float32", "bfloat16", "float16"),
                          default="float32",
                          help="float32 (default), or computation in bfloat16 or float16 "
                               "with float32 weights (see the README's Embeddings for the "
                               "error it costs)")
    features.add_argument("--weights", metavar="NAME|PATH",
                          help="weights to load (see build); published weights choose "
                               "their preprocessing unless --preprocess says otherwise")
    features.add_argument("--taps", nargs="+", action=_Taps, metavar="TAPS",
                          help="taps to show, comma-separated: block1..blockN or layer "
                               "names, as in --taps block1,block3_conv3 (default: the "
                               "spec's taps, every block). Before the images, --taps takes "
                               "one value and what follows it is images: --taps "
                               "block1,block2 a.jpg. After the images, space-separated taps "
                               "work too, up to the next option: a.jpg --taps block1 block2 "
                               "(unless the first has a comma: then it is the one value)")
    features.add_argument("--max-channels", type=_count(65536), metavar="N",
                          help="show only the first N channels of each tap")
    features.add_argument("--resize", choices=("crop", "resize"), default="crop",
                          help="crop: scale the shorter side to the input size and cut the "
                               "centre (default); resize: stretch to the input size")
    features.add_argument("--preprocess", choices=("caffe", "torch", "tf", "none"),
                          help="caffe: BGR minus the ImageNet mean, as the Keras ImageNet "
                               "weights expect (default for 3 channels); torch: 0..1, "
                               "ImageNet mean and std; tf: -1..1 (default otherwise); "
                               "none: 0..255")
    features.add_argument("--batch-size", type=_count(4096), default=16, metavar="N",
                          help="images per forward pass (default 16, at most 4096)")
    features.add_argument("--npz", action="store_true",
                          help="also save the raw maps as OUT/<image-stem>/features.npz")
    features.add_argument("--no-png", action="store_true",
                          help="write no pictures (with --npz: arrays only)")
    features.add_argument("--cmap", default="viridis", type=_colour_map,
                          help="matplotlib colour map for the maps (default viridis)")
    features.add_argument("--scale", choices=("channel", "layer"), default="channel",
                          help="channel: each tile scaled to its own min..max, so every "
                               "map shows its pattern (default); layer: one range for the "
                               "whole grid, so tiles compare and the colour bar shows values")
    _add_picture_options(features, "dark")
    _add_seed(features)
    features.add_argument("--max-activation-gib", type=_gib, default=4.0, metavar="GIB",
                          help="fail an image whose float32 feature maps would need more "
                               "than this many GiB: with an open input size, a huge image "
                               "(default 4; 0 or inf for no limit)")
    _add_limit(features)
    features.set_defaults(run=cmd_features,
                          finish=lambda args: _gather_images(args, features))

    from .schema import train_defaults

    TRAIN = train_defaults()
    train = commands.add_parser(
        "train", parents=common,
        help="train the network on a folder of class folders; resumable",
        description="Train the network a spec describes on images in one folder per class "
                    "(DIR/cat/*.jpg, DIR/dog/*.jpg), with Keras' fit. Settings come from "
                    "the spec's train section (optimizer, schedule, augmentation, ...), "
                    "which the flags below override. OUT receives best.keras and "
                    "last.keras (class names stored inside), history.csv, curves.png, "
                    "confusion.png and metrics.json for the best epoch, spec.yaml (what "
                    "was trained, every setting written out) and TensorBoard logs/. "
                    "Ctrl-C keeps the epochs done (exit 130); --resume continues them "
                    "and ends where an uninterrupted run would. Images that cannot be "
                    "read are skipped and listed at the end (exit 2).",
        epilog="example:\n  vggspec train digits.yaml --data digits/ --out runs/digits "
               "--epochs 10\n\n" + EPILOG,
        formatter_class=_Formatter)
    train.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    train.add_argument("--data", required=True, metavar="DIR",
                       help="training images, one folder per class (class order: the "
                            "folders' names, sorted)")
    train.add_argument("--out", required=True, metavar="RUN",
                       help="the run's folder: new or empty, or the run to --resume")
    train.add_argument("--val", metavar="DIR",
                       help="validation images, with the same class folders (default: hold "
                            "out --val-split of each class)")
    train.add_argument("--val-split", type=_share, metavar="SHARE",
                       help=f"share of each class held out for validation (spec default: "
                            f"{TRAIN['val_split']})")
    train.add_argument("--epochs", type=_count(100000), metavar="N",
                       help=f"passes over the training images (spec default: {TRAIN['epochs']}); may "
                            "change on "
                            "--resume")
    train.add_argument("--batch-size", type=_count(65536), metavar="N",
                       help=f"images per step, across all devices (spec default: {TRAIN['batch_size']})")
    train.add_argument("--learning-rate", type=_positive, metavar="RATE",
                       help=f"peak learning rate (spec default: {TRAIN['learning_rate']})")
    train.add_argument("--optimizer", choices=("adamw", "sgd", "adam"),
                       help=f"(spec default: {TRAIN['optimizer']})")
    train.add_argument("--seed", type=_seed_number, metavar="N",
                       help=f"seeds initialisation, split, order and augmentation (spec "
                            f"default: {TRAIN['seed']})")
    train.add_argument("--precision", choices=("float32", "bfloat16", "float16"),
                       help="float32, or mixed precision (faster on GPUs, slower on CPUs)")
    train.add_argument("--preprocess", choices=("caffe", "torch", "tf", "none"),
                       help="as in features (default: what --weights expect, else caffe "
                            "for 3 channels, tf otherwise)")
    train.add_argument("--resize", choices=("crop", "resize"), help="as in features (crop)")
    train.add_argument("--weights", metavar="NAME|PATH",
                       help="start from these weights (see build), e.g. imagenet")
    train.add_argument("--partial", action="store_true",
                       help="with --weights: load the layers that fit (a new head stays "
                            "initialised): fine-tuning with another class count")
    train.add_argument("--classes-from-data", action="store_true",
                       help="set the head's class count from the class folders")
    train.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its last finished epoch")
    _add_cache_limit(train)
    _add_limit(train)
    train.set_defaults(run=cmd_train)

    evaluate = commands.add_parser(
        "evaluate", parents=common,
        help="accuracy, per-class figures and a confusion matrix of a trained model",
        description="Run a model written by vggspec train (a run folder, meaning its "
                    "best.keras, or a .keras file) over a folder of class folders with "
                    "the same classes, and print accuracy, top-5 accuracy (above five "
                    "classes) and each class's precision and recall. Images are prepared "
                    "as in training.", epilog=EPILOG)
    evaluate.add_argument("model", metavar="RUN_OR_MODEL",
                          help="a run folder of vggspec train (its best.keras is used) or a "
                               ".keras file it wrote")
    evaluate.add_argument("--data", required=True, metavar="DIR",
                          help="images, one folder per class, with the model's classes")
    evaluate.add_argument("--out", metavar="DIR",
                          help="also write metrics.json and confusion.png into this folder")
    evaluate.add_argument("--batch-size", type=_count(65536), default=64, metavar="N",
                          help="images per forward pass (64)")
    _add_cache_limit(evaluate)
    evaluate.set_defaults(run=cmd_evaluate)

    embed = commands.add_parser(
        "embed", parents=common,
        help="one feature vector per image, in sharded arrays; resumable",
        description="Run images through the network and write one vector per image: the "
                    "feature map at --tap pooled over height and width (or flattened), "
                    "into OUT/shard-NNNNN.npy (float32, rows x length, memory-mappable) "
                    "with OUT/shard-NNNNN.paths (the image of each row, one JSON string "
                    "per line) and OUT/embed.json (the settings). Rerun the same command "
                    "to go on after Ctrl-C: images already in a shard are skipped, and at "
                    "most the shard being written is lost. Bad images are skipped and "
                    "listed at the end (exit 2). vggspec.embed.read_embeddings(OUT) "
                    "reads them back.", epilog=EPILOG)
    embed.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    embed.add_argument("images", nargs="+", metavar="IMAGE",
                       help="image files or folders of images")
    embed.add_argument("--out", required=True, metavar="DIR",
                       help="folder for the shards (new, or one to continue)")
    embed.add_argument("--tap", metavar="TAP",
                       help="the feature map to embed: blockN or a layer name (default: the "
                            "spec's last tap)")
    embed.add_argument("--pool", choices=("avg", "max", "none"), default="avg",
                       help="avg or max over height and width (a vector of the tap's "
                            "channels), or none: the whole map flattened (default avg)")
    embed.add_argument("--weights", metavar="NAME|PATH",
                       help="weights to load (see build); published weights choose the "
                            "preprocessing")
    embed.add_argument("--batch-size", type=_count(4096), default=32, metavar="N",
                       help="images per forward pass (32)")
    embed.add_argument("--shard-rows", type=_count(10_000_000), default=10_000, metavar="N",
                       help="vectors per shard file (10000); Ctrl-C loses at most one shard")
    embed.add_argument("--workers", type=_count(256), metavar="N",
                       help="threads decoding images (default: the cores this process may "
                            "use, at least 2)")
    embed.add_argument("--resize", choices=("crop", "resize"), default="crop",
                       help="as in features (crop)")
    embed.add_argument("--preprocess", choices=("caffe", "torch", "tf", "none"),
                       help="as in features (default: what --weights expect, else caffe for "
                            "3 channels, tf otherwise)")
    embed.add_argument("--precision", choices=("float32", "bfloat16", "float16"),
                       default="float32",
                       help="float32 (default), or computation in bfloat16 or float16 with "
                            "float32 weights: faster on GPUs, within about 1%% of float32 "
                            "for bfloat16 (see the README)")
    embed.add_argument("--no-draft", action="store_true",
                       help="decode JPEGs at full size (default: Pillow's draft mode decodes "
                            "a large JPEG at 1/2, 1/4 or 1/8 scale, never below the input "
                            "size: faster, pixels slightly different from features')")
    _add_limit(embed)
    embed.set_defaults(run=cmd_embed)

    predict = commands.add_parser(
        "predict", parents=common,
        help="top classes of images, with Grad-CAM maps of where the evidence lies",
        description="Print each image's top classes and their probabilities, from a spec "
                    "with weights or a model trained by vggspec train. Images are read and "
                    "prepared as features does; a folder is read whole, in batches. Class "
                    "names come from --labels, from the trained model, or ImageNet's for a "
                    "1,000-class head. With --cam, write each image with its Grad-CAM map "
                    "(Selvaraju et al., 2017) laid over it.",
        epilog="examples:\n"
               "  vggspec predict vgg16 --weights imagenet photo.jpg --top 3\n"
               "  vggspec predict runs/digits photos/ --cam --out cams\n"
               "  vggspec predict vgg16 --weights imagenet photo.jpg --cam --class tabby\n\n"
               + EPILOG, formatter_class=_Formatter)
    predict.add_argument("source", metavar="SPEC_OR_MODEL",
                         help=f"{SPEC_HELP}; or a run folder or .keras file from vggspec "
                              f"train")
    predict.add_argument("images", nargs="+", metavar="IMAGE",
                         help="image files or folders of images")
    predict.add_argument("--weights", metavar="NAME|PATH",
                         help="weights for a spec: imagenet, torchvision or a file (see "
                              "build); without it, the seeded starting weights")
    predict.add_argument("--top", type=_count(1000), default=5, metavar="K",
                         help="classes shown per image (default 5)")
    predict.add_argument("--labels", metavar="FILE",
                         help="class names, one per line in output order")
    predict.add_argument("--cam", action="store_true",
                         help="write a Grad-CAM picture per image to --out")
    predict.add_argument("--cam-layer", metavar="LAYER",
                         help="convolution layer the map is taken at (default the last, "
                              "block5_conv3 in VGG16)")
    predict.add_argument("--class", dest="class_name", metavar="NAME",
                         help="draw the map for this class (a name, an output number, or "
                              "an ImageNet WordNet id) instead of each image's top class")
    predict.add_argument("--out", default="cam", metavar="DIR",
                         help="folder for the Grad-CAM pictures (default cam)")
    predict.add_argument("--resize", choices=("crop", "resize"),
                         help="as in features (default crop, or the trained model's)")
    predict.add_argument("--preprocess", choices=("caffe", "torch", "tf", "none"),
                         help="as in features (default: what the weights or the trained "
                              "model expect)")
    predict.add_argument("--batch-size", type=_count(4096), default=16, metavar="N",
                         help="images per forward pass (default 16)")
    _add_picture_options(predict, "dark")
    _add_seed(predict)
    _add_limit(predict)
    predict.set_defaults(run=cmd_predict)

    filters = commands.add_parser(
        "filters", parents=common,
        help="pictures of the input patterns that excite a conv layer's filters most",
        description="For each chosen filter of a convolution layer, start from seeded grey "
                    "noise and climb the gradient of the filter's mean response for a fixed "
                    "number of steps (as in Keras' example 'Visualizing what convnets "
                    "learn'), then tile the patterns in one picture, numbered. All filters "
                    "climb together in one batch. The same seed gives the same picture.",
        epilog="examples:\n"
               "  vggspec filters vgg16 --weights imagenet --layer block3_conv1 --out f.png\n"
               "  vggspec filters runs/digits --layer block2_conv1 --count 32\n\n"
               + EPILOG, formatter_class=_Formatter)
    filters.add_argument("source", metavar="SPEC_OR_MODEL",
                         help=f"{SPEC_HELP}; or a run folder or .keras file from vggspec "
                              f"train")
    filters.add_argument("--layer", required=True, metavar="LAYER",
                         help="the convolution layer, such as block3_conv1")
    filters.add_argument("--weights", metavar="NAME|PATH",
                         help="weights for a spec: imagenet, torchvision or a file (see "
                              "build); untrained filters show little")
    which = filters.add_mutually_exclusive_group()
    which.add_argument("--count", type=_count(4096), metavar="N",
                       help="the first N filters (default 16, or all of a smaller layer)")
    which.add_argument("--filters", type=_filter_list, metavar="LIST",
                       help="these filters instead, comma-separated: 0,5,9")
    filters.add_argument("--size", type=_count(1024), metavar="PIXELS",
                         help="side of the square input the patterns grow in (default 64; "
                              "the picture loses an eighth on each side)")
    filters.add_argument("--steps", type=_count(10000), default=20, metavar="N",
                         help="gradient-ascent steps (default 20)")
    filters.add_argument("--preprocess", choices=("caffe", "torch", "tf", "none"),
                         help="as in features (default: what the weights or the trained "
                              "model expect)")
    filters.add_argument("--out", metavar="FILE",
                         help="the picture: .png, .svg or .pdf (default "
                              "<name>_<layer>.<format> here)")
    _add_picture_options(filters, "dark", format_default=None)
    filters.add_argument("--seed", type=_seed_number, default=0, metavar="N",
                         help="seed for the starting noise and for the starting weights of "
                              "layers no weights file fills (default 0)")
    _add_limit(filters)
    filters.set_defaults(run=cmd_filters)

    diagram = commands.add_parser(
        "diagram", parents=common,
        help="draw the architecture (PNG, SVG or PDF), without TensorFlow",
        description="Draw the network as boxes whose height follows the spatial size and "
                    "thickness the channels, labelled in the paper's notation (conv3-64, "
                    "maxpool, FC-4096, soft-max), with each block's output shape. Batch norm "
                    "is drawn inside its convolution. The figure is 7 inches wide (a "
                    "two-column paper's full width) with 7.5 pt text, so it goes into a "
                    "paper as it is.",
        epilog="examples:\n"
               "  vggspec diagram vgg16                       # vgg16.png here\n"
               "  vggspec diagram archs/vgg19_bn.yaml --format pdf\n"
               "  vggspec diagram my.yaml --out slides/net.svg --theme dark\n\n" + EPILOG,
        formatter_class=_Formatter)
    diagram.add_argument("spec", metavar="SPEC", help=SPEC_HELP)
    diagram.add_argument("--out", metavar="FILE",
                         help="output .png, .svg or .pdf (default: <spec file stem>.png in "
                              "the current folder, such as vgg16.png for archs/vgg16.yaml "
                              "or vgg16)")
    diagram.add_argument("--format", choices=("png", "svg", "pdf"),
                         help="the format, when --out is not given (default png); the "
                              "figure is 7 inches wide with 7.5 pt text, so it goes into a "
                              "paper as it is")
    diagram.add_argument("--theme", choices=("light", "dark"), default="light",
                         help="light (default) or dark background, for slides")
    _add_limit(diagram)
    diagram.set_defaults(run=cmd_diagram)

    schema = commands.add_parser(
        "schema", parents=common,
        help="print the spec's JSON Schema (for editors and check-jsonschema)",
        description="Print the JSON Schema (Draft 2020-12) that specs follow.")
    schema.set_defaults(run=cmd_schema)

    new = commands.add_parser(
        "new", parents=common,
        help="write a starter spec that extends a shipped one, with a modeline for editors",
        description="Write a few lines of YAML that extend a shipped spec, with a "
                    "yaml-language-server modeline whose path leads from the new file to "
                    "the schema installed with vggspec, so editors complete and check it "
                    "as you type. Then edit it and run `vggspec summary FILE`.",
        epilog=EPILOG)
    new.add_argument("file", metavar="FILE",
                     help="the spec to write (.yaml or .yml); its folder must exist")
    new.add_argument("--from", dest="base", default="vgg16", metavar="NAME",
                     help="the shipped spec to start from (default vgg16; see vggspec list)")
    new.add_argument("--force", action="store_true", help="replace FILE if it exists")
    new.set_defaults(run=cmd_new)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (the console script exits with it)."""
    args = build_parser().parse_args(argv)
    _started.clear()  # each command says where it runs, also when called in-process
    if finish := getattr(args, "finish", None):
        finish(args)
    # TensorFlow's C++ start-up notes are not for our users; real errors still show.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.run(args)
    except (SpecError, InputError, UsageError) as error:
        if args.debug:
            raise
        print(error, file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt:
        if args.debug:
            raise
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader stopped early (`vggspec list | head`): not an error. Point stdout at
        # nothing so Python's own flush at exit cannot complain about it either.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except OSError as error:
        # A file-system failure no check foresaw (a disk that fills up mid-write): one
        # line, exit 2; --debug shows where.
        if args.debug:
            raise
        name = f"{printable(str(error.filename))}: " if error.filename else ""
        print(f"{name}{printable(error.strerror or str(error))}", file=sys.stderr)
        return EXIT_UNUSABLE_INPUT


if __name__ == "__main__":
    sys.exit(main())

"""Export a trained translator to one self-contained file (TorchScript or ONNX), and run such a file.

``export(translator, path, "onnx" | "torchscript", direction)`` writes a graph of pure inference: the weights the
translator holds (the run's EMA copy when it kept one, as ``unpaired translate`` uses), eval mode, no gradients,
one direction. Before the file is kept it is read back and run against eager mode on the example batch and on a
batch of another size and shape (within ``TOLERANCE``); a file that does not match is never written.

The file's contract, the same for every method (also stored in the file: TorchScript ``extra/unpaired.json``,
ONNX ``metadata_props``):

- input ``x``: float32, N x C x H x W, values in [-1, 1] (``pixel / 127.5 - 1``; C = 1 for gray, 3 for RGB);
- output ``y``: float32, N x C' x H x W in [-1, 1] (``(y + 1) * 127.5`` back to 0..255);
- H and W multiples of ``size_multiple`` (the networks' total stride); N, H and W are free ("dynamic") where the
  exported graph allows it, which is checked at export time; otherwise ``dynamic`` is false and the file takes
  the example's ``height`` x ``width`` only, and ``ExportedTranslator`` says so in one line.

Float32 NCHW in [-1, 1] rather than uint8 images: it is the networks' own range, so the exported file computes
exactly what eager mode does (the tests hold it to 1e-4), and it is the usual layout of image models in ONNX;
going from a uint8 H x W x C array is the two lines of the README's Export section.

Methods with a style space (MUNIT, TUNIT) give many outputs per input; an exported file gives one: its style
code is chosen at export time (``seed``: a code drawn from MUNIT's prior; ``reference``: the style an example
image of the target domain encodes to; ``domain``: TUNIT's average style of a discovered domain) and baked into
the graph as a constant. So every exported file has the same one-input signature, a user needs no style encoder
nor prior to run it, and the graph holds the decoder path only; another style is another export (cheap: seconds).
"""

from __future__ import annotations

import copy
import io
import json
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from torch import Tensor, nn

from unpaired.inference import Translator, open_image, prepare_image
from unpaired.io import atomic_write
from unpaired.methods.base import DiscoveredDomains, Method, StylePrior, StyleSpace, has_capability, require

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
METADATA_NAME = "unpaired.json"
"""TorchScript: the metadata file in the archive's ``extra/``; ONNX: the ``metadata_props`` key holding it."""
FORMAT_VERSION = 1
TOLERANCE = 1e-4
"""Largest absolute difference from eager mode (fp32) an exported file may show at export time."""
ONNX_OPSET = 18

def _version() -> str:
    """unpaired's installed version (read from the package metadata: the package's __init__ is a higher layer)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unpaired")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown"


CONTRACT = ("input x: float32 N x C x H x W in [-1, 1] (pixel / 127.5 - 1); output y: float32 N x C' x H x W in "
            "[-1, 1] ((y + 1) * 127.5 gives 0..255)")


class ExportError(ValueError):
    """An export that cannot be made, or an exported file that cannot be read or run as asked."""


class InferenceGraph(nn.Module):
    """What is exported: x -> the translation of x in ``direction``, with ``style`` (1 x style_dim) baked in as a
    constant for methods with a style space (None for the others)."""

    def __init__(self, method: Method, direction: str, style: Tensor | None) -> None:
        super().__init__()
        self.method = method
        self.direction = direction
        self.register_buffer("style", style)

    def forward(self, x: Tensor) -> Tensor:
        if self.style is None:
            return self.method.translate(x, self.direction)
        return self.method.translate_with_styles(x, self.direction, self.style)


def style_code(translator: Translator, direction: str, seed: int | None = None,
               reference: Image.Image | str | Path | None = None,
               domain: int | None = None) -> tuple[Tensor | None, str]:
    """The style code (1 x style_dim) the export bakes in, and how it was chosen (for the metadata); (None,
    "none") for a method without a style space. One of ``seed``, ``reference``, ``domain`` is needed when the
    method has one, and none may be given when it has not."""
    method = translator.method
    given = [name for name, value in (("--style", seed), ("--reference", reference), ("--domain", domain))
             if value is not None]
    if len(given) > 1:
        raise ExportError(f"{' and '.join(given)} exclude each other; give one")
    if not has_capability(method, StyleSpace):
        if given:
            require(method, StyleSpace, given[0])  # raises, naming the methods that have one
        return None, "none"
    if not given:
        choices = ["--reference IMG"] + (["--style SEED"] if has_capability(method, StylePrior) else []) \
            + (["--domain J"] if has_capability(method, DiscoveredDomains) else [])
        raise ExportError(f"method {method.name} has a style space: an exported file has one style, chosen with "
                          f"{' or '.join(choices)}")
    with torch.no_grad():
        if seed is not None:
            return require(method, StylePrior, "--style SEED").sample_styles(1, seed, translator.device), \
                f"seed {seed}"
        if domain is not None:
            return require(method, DiscoveredDomains, "--domain").domain_style(domain).to(translator.device), \
                f"domain {domain}"
        image = translator.prepare(open_image(reference), direction, domain=direction[-1])
        name = reference if isinstance(reference, (str, Path)) else "an image"
        return method.encode_style(direction[-1], image.to(translator.device)), f"reference {name}"


@dataclass
class ExportResult:
    path: Path
    metadata: dict[str, Any]
    max_difference: float
    """Largest |exported - eager| over the example batch (and the other-shape batch when dynamic)."""


def example_inputs(channels: int, size: int, multiple: int) -> tuple[Tensor, Tensor]:
    """The batch the graph is exported with (2 x C x size x size) and the one that checks it generalises
    (3 images, sides one and two strides longer): fixed random images in [-1, 1]."""
    gen = torch.Generator().manual_seed(0)
    example = torch.rand(2, channels, size, size, generator=gen) * 2 - 1
    other = torch.rand(3, channels, size + multiple, size + 2 * multiple, generator=gen) * 2 - 1
    return example, other


def export(translator: Translator, path: str | Path, fmt: str, direction: str = "a2b", seed: int | None = None,
           reference: Image.Image | str | Path | None = None, domain: int | None = None,
           size: int | None = None) -> ExportResult:
    """Write ``translator``'s ``direction`` as one ``fmt`` file (see the module docstring); ``size``: the side of
    the example images (default: the training size). Raises ``ExportError`` for a direction the model does not
    have, a style choice that does not fit the method, a missing exporter package, or an exported graph that
    does not match eager mode."""
    if fmt not in FORMATS:
        raise ExportError(f"--format must be one of {', '.join(FORMATS)}, got '{fmt}'")
    method = translator.method
    if not method.exportable:
        raise ExportError(f"method {method.name} translates by an optimisation per image, which is no fixed graph: it "
                          "cannot be exported; translate with the checkpoint itself (unpaired translate --checkpoint)")
    if Method.check_direction(direction) not in method.directions:
        raise ExportError(f"this {method.name} model translates {', '.join(method.directions)} only, not {direction}")
    path = Path(path)
    style, style_text = style_code(translator, direction, seed, reference, domain)
    # a copy, exported on the CPU (runs anywhere): the translator keeps its device and its parameters' flags
    graph = InferenceGraph(copy.deepcopy(method), direction, None if style is None else style.cpu())
    graph.eval().cpu().requires_grad_(False)
    multiple = int(getattr(method, "size_multiple", 1))
    side = size or translator.image_size
    if side % multiple:
        raise ExportError(f"--size {side} must be a multiple of {multiple} (the network's stride)")
    example, other = example_inputs(method.channels[direction[0]], side, multiple)
    with torch.no_grad():
        eager = graph(example), graph(other)
    exporter = _export_torchscript if fmt == "torchscript" else _export_onnx
    with warnings.catch_warnings():  # tracer and deprecation notes: whether the graph holds is checked here
        warnings.simplefilter("ignore")
        data, dynamic, run = exporter(graph, example, path)
        difference = float((run(example) - eager[0]).abs().max())
        if not difference <= TOLERANCE:
            raise ExportError(f"{path}: the exported {fmt} graph differs from eager mode by {difference:.2e} "
                              f"(> {TOLERANCE:g}); not written")
        if dynamic:
            try:
                other_difference = float((run(other) - eager[1]).abs().max())
            except Exception:  # the runtime refused the other shape: a static graph after all
                other_difference = float("inf")
            dynamic = other_difference <= TOLERANCE
            if dynamic:
                difference = max(difference, other_difference)
            else:  # a graph that runs other shapes wrongly must not claim them: export the example's shape only
                data, _, run = exporter(graph, example, path, dynamic=False)
    metadata = {
        "format_version": FORMAT_VERSION, "producer": f"unpaired {_version()}", "format": fmt,
        "method": method.name, "direction": direction, "step": translator.step, "uses_ema": translator.uses_ema,
        "style": style_text, "in_channels": method.channels[direction[0]],
        "out_channels": method.channels[direction[-1]], "image_size": translator.image_size,
        "size_multiple": multiple, "dynamic": dynamic, "height": side, "width": side, "contract": CONTRACT,
        "input_name": "x", "output_name": "y",
    }
    atomic_write(path, lambda handle: handle.write(_with_metadata(fmt, data, metadata)))
    return ExportResult(path, metadata, difference)


def _export_torchscript(graph: nn.Module, example: Tensor, path: Path, dynamic: bool = True) -> tuple:
    """Traced (the methods' Python is not scriptable), then frozen: weights inlined as constants and everything
    the direction does not use (discriminators, the other generator, style encoders) dropped."""
    with torch.no_grad():
        traced = torch.jit.trace(graph, example, check_trace=False)
    frozen = torch.jit.freeze(traced.eval())
    buffer = io.BytesIO()
    torch.jit.save(frozen, buffer)

    def run(x: Tensor) -> Tensor:
        with torch.no_grad():
            return frozen(x)

    return buffer.getvalue(), dynamic, run


def _onnx() -> Any:
    """The onnx module, once the exporter's packages are known to be there (onnxruntime checks each export)."""
    try:
        import onnx
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401  (torch.onnx's exporter needs it)
    except ImportError as err:
        raise ExportError(f"ONNX export needs the onnx, onnxscript and onnxruntime packages ({err}); install them "
                          "with: pip install 'unpaired[onnx]'") from None
    return onnx


def _export_onnx(graph: nn.Module, example: Tensor, path: Path, dynamic: bool = True) -> tuple:
    """torch.export (the dynamo exporter) with batch, height and width symbolic; one file, no external data."""
    _onnx()
    dims = None
    if dynamic:
        dim = torch.export.Dim
        multiple = int(getattr(graph.method, "size_multiple", 1))
        h, w = dim("h_blocks", min=1), dim("w_blocks", min=1)
        dims = {"x": {0: dim("batch", min=1), 2: multiple * h if multiple > 1 else h,
                      3: multiple * w if multiple > 1 else w}}
    with torch.no_grad():
        try:
            program = torch.onnx.export(graph, (example,), None, dynamo=True, input_names=["x"], output_names=["y"],
                                        dynamic_shapes=dims, opset_version=ONNX_OPSET, external_data=False,
                                        verbose=False)
        except Exception as err:  # the graph has a fixed shape somewhere: export that shape only
            if not dynamic:
                raise ExportError(f"{path}: ONNX export failed ({str(err).splitlines()[0]})") from err
            return _export_onnx(graph, example, path, dynamic=False)
    data = program.model_proto.SerializeToString()
    session = _onnx_session(data, threads=1)

    def run(x: Tensor) -> Tensor:
        return torch.from_numpy(session.run(None, {"x": x.numpy()})[0])

    return data, dynamic, run


def _onnx_session(data: bytes | str, threads: int | None = None) -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise ExportError("running an .onnx file needs onnxruntime: pip install onnxruntime (or "
                          "'unpaired[onnx]')") from None
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])


def _with_metadata(fmt: str, data: bytes, metadata: dict[str, Any]) -> bytes:
    text = json.dumps(metadata, indent=2)
    if fmt == "torchscript":  # re-save through torch.jit so the extra file sits where torch.jit.load finds it
        buffer = io.BytesIO()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            torch.jit.save(torch.jit.load(io.BytesIO(data)), buffer, _extra_files={METADATA_NAME: text})
        return buffer.getvalue()
    onnx = _onnx()
    model = onnx.load_from_string(data)
    onnx.helper.set_model_props(model, {METADATA_NAME: text, "contract": CONTRACT})
    model.producer_name, model.producer_version = "unpaired", _version()
    return model.SerializeToString()


# -- running an exported file ------------------------------------------------------------------------------------
def is_exported(path: str | Path) -> bool:
    """Whether ``path`` is a file ``export`` wrote: an .onnx file, or a TorchScript archive holding unpaired's
    metadata (a training checkpoint, also a zip, holds none)."""
    path = Path(path)
    if not path.is_file():
        return False
    if path.suffix.lower() == ".onnx":
        return True
    try:
        with zipfile.ZipFile(path) as archive:
            return any(name.endswith(f"/extra/{METADATA_NAME}") for name in archive.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


class ExportedTranslator:
    """An exported file, ready to translate: ``translate(x)`` on float32 N x C x H x W in [-1, 1], and
    ``translate_image`` as ``Translator`` has it (same preparation of the image). ONNX files run on
    onnxruntime's CPU provider with ``threads`` intra-op threads (None: its default); TorchScript files on
    ``device``."""

    def __init__(self, path: str | Path, device: str = "cpu", threads: int | None = None) -> None:
        self.path = Path(path)
        self.format = "onnx" if self.path.suffix.lower() == ".onnx" else "torchscript"
        try:
            if self.format == "onnx":
                self._session = _onnx_session(str(self.path), threads)  # onnxruntime alone reads the metadata
                text = self._session.get_modelmeta().custom_metadata_map.get(METADATA_NAME)
            else:
                extra = {METADATA_NAME: ""}
                with warnings.catch_warnings():  # torch.jit's deprecation note: the format is what users run
                    warnings.simplefilter("ignore", DeprecationWarning)
                    self._module = torch.jit.load(str(self.path), map_location=device, _extra_files=extra)
                self._device = torch.device(device)
                text = extra[METADATA_NAME] or None
        except ExportError:
            raise
        except Exception as err:  # onnx's DecodeError, torch's RuntimeError...: not a readable model
            raise ExportError(f"{self.path}: not a readable {self.format} file ({str(err).splitlines()[0]})") \
                from None
        if not text:
            raise ExportError(f"{self.path}: no unpaired metadata in this {self.format} file (not written by "
                              "`unpaired export`)")
        self.metadata: dict[str, Any] = json.loads(text)
        if self.metadata.get("format_version", 0) > FORMAT_VERSION:
            raise ExportError(f"{self.path}: written by a newer unpaired (format {self.metadata['format_version']}, "
                              f"this one reads {FORMAT_VERSION})")

    @property
    def direction(self) -> str:
        return self.metadata["direction"]

    def check(self, x: Tensor) -> None:
        """Refuse input the file cannot take, in one line naming the file."""
        m = self.metadata
        if x.dim() != 4 or x.shape[1] != m["in_channels"]:
            raise ExportError(f"{self.path}: takes N x {m['in_channels']} x H x W images, got {tuple(x.shape)}")
        h, w = x.shape[2], x.shape[3]
        if not m["dynamic"] and (h, w) != (m["height"], m["width"]):
            raise ExportError(f"{self.path}: this exported {m['method']} graph takes {m['height']}x{m['width']} images "
                              f"only (its network could not be exported for other sizes), got {h}x{w}")
        if h % m["size_multiple"] or w % m["size_multiple"]:
            raise ExportError(f"{self.path}: image sides must be multiples of {m['size_multiple']}, got {h}x{w}")

    def translate(self, x: Tensor) -> Tensor:
        self.check(x)
        x = x.float()
        if self.format == "onnx":
            return torch.from_numpy(self._session.run(None, {"x": x.cpu().contiguous().numpy()})[0])
        with torch.no_grad():
            return self._module(x.to(self._device)).cpu()

    def prepare(self, image: Image.Image, size: int | None = None) -> Tensor:
        m = self.metadata
        if not m["dynamic"]:
            return prepare_image(image.resize((m["width"], m["height"]), Image.BICUBIC), m["in_channels"],
                                 m["height"], m["size_multiple"])
        return prepare_image(image, m["in_channels"], size or m["image_size"], m["size_multiple"])

    def translate_image(self, image: Image.Image | str | Path, direction: str | None = None, size: int | None = None,
                        keep_size: bool = False) -> list[Image.Image]:
        from unpaired.images import tensor_to_pil

        if direction is not None and direction != self.direction:
            raise ExportError(f"{self.path}: this file translates {self.direction} only, not {direction}")
        image = open_image(image)
        results = [tensor_to_pil(y) for y in self.translate(self.prepare(image, size))]
        return [r.resize(image.size, Image.BICUBIC) for r in results] if keep_size else results

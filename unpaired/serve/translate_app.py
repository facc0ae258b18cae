"""``unpaired serve``: a page where a user uploads an image, picks a model, a direction and (for methods with a
style space) a style, and sees and downloads the translation beside the input.

Translation runs in worker threads (at most ``workers`` at once, at most ``max_waiting`` requests queued, then
"busy"), so the event loop keeps answering other requests while a model works. The page has no script: one
form, answered by a page with both images inline (data URLs), so nothing is stored on the server.
"""

from __future__ import annotations

import base64
import io
import random
from dataclasses import dataclass
from pathlib import Path

import anyio
from PIL import Image
from starlette.applications import Starlette
from starlette.datastructures import FormData, UploadFile
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from unpaired.images import tensor_to_pil
from unpaired.inference import Translator, load
from unpaired.serve.uploads import BodyLimit, UploadError, UploadLimits, read_image
from unpaired.serve.web import SecurityHeaders, error_handlers, escape, page

TITLE = "unpaired: translate an image"
STYLE_MODES = {
    "default": ("the model's default", ()),
    "random": ("a random style (give a seed to repeat it)", ("seed",)),
    "reference": ("the style of a reference image of the target domain", ("reference",)),
    "domain": ("the average style of a discovered domain", ("domain",)),
}
"""Style choices of the form -> (words on the page, the translate options they need). A model offers the modes
whose options its method declares in ``translate_options``."""


@dataclass
class Model:
    label: str
    translator: Translator

    def modes(self) -> list[str]:
        offered = self.translator.method.translate_options
        return [mode for mode, (_, needs) in STYLE_MODES.items() if set(needs) <= offered]


@dataclass
class Translation:
    model: Model
    direction: str
    shown_input: Image.Image
    outputs: list[Image.Image]
    seed: int | None


def load_models(checkpoints: list[Path], device: str = "auto") -> list[Model]:
    """Each checkpoint (file or run folder) loaded for inference, labelled by method, run folder and step."""
    models = []
    for path in checkpoints:
        translator = load(path, device=device)
        run = path if path.is_dir() else path.parent.parent
        models.append(Model(f"{translator.config.method} ({run.name}, step {translator.step})", translator))
    return models


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def data_url(image: Image.Image) -> str:
    return "data:image/png;base64," + base64.b64encode(png_bytes(image)).decode()


def _field(form: FormData, name: str) -> str:
    """A text field ('' when absent); a file sent where text is expected is refused."""
    value = form.get(name, "")
    if isinstance(value, UploadFile):
        raise UploadError(f"field '{name}' must be text, not a file")
    return value.strip()


def _integer(form: FormData, name: str, low: int, high: int) -> int | None:
    text = _field(form, name)
    if not text:
        return None
    if not text.lstrip("-").isdigit() or not low <= int(text) <= high:
        raise UploadError(f"field '{name}' must be a whole number from {low} to {high}, got '{text[:40]}'")
    return int(text)


async def _image(form: FormData, name: str, limits: UploadLimits, what: str) -> Image.Image:
    """The uploaded file of field ``name``. A text value (a path, say) is refused, never opened."""
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise UploadError(f"{what}: no file was uploaded; choose an image file (a typed name or path is not read)")
    return read_image(await upload.read(), limits, what)


class TranslateApp:
    """The web app over ``models``; ``app`` is the ASGI application."""

    def __init__(self, models: list[Model], limits: UploadLimits | None = None, workers: int = 1,
                 max_waiting: int = 32) -> None:
        if not models:
            raise ValueError("serve needs at least one checkpoint")
        self.models = models
        self.limits = limits or UploadLimits()
        self.workers = anyio.CapacityLimiter(workers)
        self.max_waiting = max_waiting
        self.waiting = 0
        routes = [Route("/", self.home), Route("/translate", self.translate_page, methods=["POST"]),
                  Route("/api/translate", self.translate_png, methods=["POST"])]
        self.app = Starlette(routes=routes, exception_handlers=error_handlers(TITLE),
                             middleware=[Middleware(SecurityHeaders), Middleware(BodyLimit,
                                                                                 max_bytes=self.limits.max_bytes)])

    # -- pages -------------------------------------------------------------------------------------------------
    def form_html(self) -> str:
        models = "".join(
            f'<option value="{i}">{escape(m.label)}: {escape(", ".join(m.translator.method.directions))}; styles: '
            f'{escape(", ".join(m.modes()))}</option>' for i, m in enumerate(self.models))
        modes = "".join(f'<option value="{mode}">{escape(words)}</option>'
                        for mode, (words, _) in STYLE_MODES.items())
        return (
            '<form method="post" action="/translate" enctype="multipart/form-data">'
            f'<label>Image ({escape(self._limits_text())}): <input type="file" name="image" accept="image/*" '
            'required></label>'
            f'<label>Model: <select name="model">{models}</select></label>'
            '<label>Direction: <select name="direction"><option value="a2b">a to b</option>'
            '<option value="b2a">b to a</option></select></label>'
            f'<fieldset><legend>Style (models with a style space)</legend><label><select name="style">{modes}'
            '</select></label><label>Seed: <input type="number" name="seed" min="0" max="2147483647"></label>'
            '<label>Reference image: <input type="file" name="reference" accept="image/*"></label>'
            '<label>Domain: <input type="number" name="domain" min="0" max="1000"></label></fieldset>'
            '<p><button type="submit">Translate</button></p></form>')

    def _limits_text(self) -> str:
        return (f"PNG, JPEG, BMP or WebP; at most {self.limits.max_bytes / 2**20:g} MiB and "
                f"{self.limits.max_pixels / 1e6:g} million pixels")

    async def home(self, request: Request) -> HTMLResponse:
        return page(TITLE, self.form_html())

    async def translate_page(self, request: Request) -> HTMLResponse:
        done = await self._translate(request)
        figures = [("input", done.shown_input)] + [(f"translation {done.direction}" if len(done.outputs) == 1 else
                                                    f"translation {k + 1}", out) for k, out in enumerate(done.outputs)]
        cells = "".join(
            f'<figure><img class="shown" alt="{escape(name)}" src="{data_url(image)}"><figcaption>{escape(name)}'
            + ("" if name == "input" else
               f' <a download="translation_{done.direction}_{k}.png" href="{data_url(image)}">download</a>')
            + "</figcaption></figure>" for k, (name, image) in enumerate(figures))
        seed = f" with style seed {done.seed}" if done.seed is not None else ""
        body = (f'<p>{escape(done.model.label)}, {escape(done.direction)}{escape(seed)}</p>'
                f'<div class="row" id="result">{cells}</div><h2>Another</h2>{self.form_html()}')
        return page(TITLE, body)

    async def translate_png(self, request: Request) -> Response:
        """The same form, answered with the (first) translation as a PNG: for scripts and the benchmark."""
        done = await self._translate(request)
        return Response(png_bytes(done.outputs[0]), media_type="image/png")

    # -- the work ------------------------------------------------------------------------------------------------
    async def _translate(self, request: Request) -> Translation:
        async with request.form(max_files=2, max_fields=8, max_part_size=4096) as form:
            model = self.models[_integer(form, "model", 0, len(self.models) - 1) or 0]
            direction = _field(form, "direction") or model.translator.method.directions[0]
            if direction not in model.translator.method.directions:
                raise UploadError(f"{model.label} translates {', '.join(model.translator.method.directions)} only, "
                                  f"not '{direction[:10]}'")
            options, seed = await self._options(form, model)
            image = await _image(form, "image", self.limits, "the image")
        if self.waiting >= self.max_waiting:
            raise UploadError("the server is busy translating other images; try again in a moment", 503)
        self.waiting += 1
        try:
            shown, outputs = await anyio.to_thread.run_sync(self._work, model, image, direction, options,
                                                            limiter=self.workers)
        finally:
            self.waiting -= 1
        return Translation(model, direction, shown, outputs, seed)

    async def _options(self, form: FormData, model: Model) -> tuple[dict, int | None]:
        mode = _field(form, "style") or "default"
        seed = _integer(form, "seed", 0, 2**31 - 1)
        if mode not in STYLE_MODES:
            raise UploadError(f"unknown style '{mode[:20]}'; choose one of {', '.join(STYLE_MODES)}")
        if mode == "default" and seed is not None:
            mode = "random"  # a seed alone asks for that random style
        if mode not in model.modes():
            raise UploadError(f"{model.label} cannot translate with {STYLE_MODES[mode][0]}; it offers "
                              f"{', '.join(model.modes())}")
        options: dict = {}
        if mode == "random":
            seed = random.SystemRandom().randrange(2**31) if seed is None else seed
            options["seed"] = seed
        elif mode == "reference":
            options["reference"] = await _image(form, "reference", self.limits, "the reference image")
        elif mode == "domain":
            domain = _integer(form, "domain", 0, 1000)
            if domain is None:
                raise UploadError("give the number of the domain to translate into")
            options["domain"] = domain
        return options, options.get("seed")

    @staticmethod
    def _work(model: Model, image: Image.Image, direction: str, options: dict) -> tuple[Image.Image, list]:
        translator = model.translator
        try:
            outputs = translator.translate_image(image, direction, **options)
        except (ValueError, IndexError, RuntimeError) as err:  # e.g. a domain index out of range
            raise UploadError(f"{model.label} cannot translate this: {str(err).splitlines()[0]}") from err
        return tensor_to_pil(translator.prepare(image, direction)[0]), outputs

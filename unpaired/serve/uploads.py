"""Uploaded images, checked before anything trusts them: a byte limit enforced while the body arrives, the type
sniffed from the content (never the file name), the pixel count read from the header before decoding, and PIL's
decompression-bomb guard turned into a refusal. Nothing a client sends is ever used as a path.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image

SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"\xff\xd8\xff", "JPEG"),
    (b"BM", "BMP"),
)
"""Leading bytes of the accepted formats (WebP is checked apart: RIFF....WEBP). The same formats as the data
folders accept."""

ACCEPTED = "PNG, JPEG, BMP or WebP"


class UploadError(ValueError):
    """An upload that is refused; the message says why, in words a user can act on. ``status`` is the HTTP
    status to answer with (400 bad request, 413 too large, 415 wrong type)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class UploadLimits:
    max_bytes: int = 10 * 2**20
    """Largest request body (the image and the form together)."""
    max_pixels: int = 25_000_000
    """Largest image, width x height, read from the header before any pixel is decoded."""


def sniff_format(data: bytes) -> str | None:
    """The image format the content starts with (PNG, JPEG, BMP, WEBP), or None."""
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    return next((name for magic, name in SIGNATURES if data.startswith(magic)), None)


def read_image(data: bytes, limits: UploadLimits, what: str = "the upload") -> Image.Image:
    """Decode uploaded bytes into a PIL image, or raise ``UploadError`` naming ``what`` and the problem."""
    if not data:
        raise UploadError(f"{what}: no file was uploaded; choose an image ({ACCEPTED})")
    if len(data) > limits.max_bytes:
        raise UploadError(f"{what}: {len(data):,} bytes is over the limit of {limits.max_bytes:,} bytes", 413)
    fmt = sniff_format(data)
    if fmt is None:
        raise UploadError(f"{what}: not an image this server reads (the content is not {ACCEPTED}, whatever its "
                          "name says)", 415)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)  # PIL's own guard refuses, not warns
        try:
            image = Image.open(io.BytesIO(data), formats=[fmt])
            pixels = image.width * image.height
            if pixels > limits.max_pixels:  # from the header: nothing decoded yet
                raise UploadError(f"{what}: {image.width} x {image.height} = {pixels:,} pixels is over the limit of "
                                  f"{limits.max_pixels:,} pixels (a decompression bomb is refused the same way)", 413)
            image.load()
        except UploadError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise UploadError(f"{what}: refused as a decompression bomb ({err})", 413) from err
        except (OSError, SyntaxError, ValueError) as err:
            raise UploadError(f"{what}: the {fmt} file cannot be decoded ({err})") from err
    return image


class BodyTooLarge(UploadError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"the upload is over the limit of {limit:,} bytes; choose a smaller image", 413)


class BodyLimit:
    """ASGI middleware: a request whose body is (or declares itself) over ``max_bytes`` raises ``BodyTooLarge``
    as soon as that is known, from inside the app's ``receive``, so the app's handler for it answers 413 and no
    more of the body is read or spooled."""

    def __init__(self, app, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length", b"0")
        received = 0

        async def limited_receive():
            nonlocal received
            if declared.isdigit() and int(declared) > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, limited_receive, send)

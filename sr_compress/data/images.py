"""Image files → 8-bit RGB arrays, by the field's conventions (docs/data.md, "Image files").

One function decides every rule, :func:`read_u8`; it returns the pixels and, when the file was not plain 8-bit
RGB, a note saying what was done (reports show it). Rules:

- RGB (8 bits per channel): as is. ``YCbCr`` (some JPEG/TIFF decoders) is converted to RGB.
- Greyscale ``L`` (and bilevel ``1``): read as three equal channels, noted — BasicSR and the papers read Set14's
  greyscale images (bridge) this way.
- Palette ``P``: expanded to RGB, noted; with transparency, the alpha rule below applies.
- Alpha (``RGBA``, ``LA``, ``PA``, palette transparency): an alpha channel that is fully opaque (255
  everywhere) is dropped, noted; any transparent pixel → refused (what is behind it is undefined).
- 16-bit (``I;16*``, ``I``, 16-bit RGB PNG/TIFF), 32-bit float ``F``, ``CMYK`` and other modes → refused with
  one line (converting them needs a choice — tone mapping, a colour profile — that the user should make).
- Decompression bombs: width × height is read from the header and refused above ``MAX_PIXELS`` (or the
  ``max_pixels`` given) before any pixel is decoded.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Largest image (width × height) read; Pillow's own warning limit (~179 Mpixel, 537 MB as 8-bit RGB).
MAX_PIXELS = 178_956_970

_GREY = {"L", "1"}
_ALPHA = {"RGBA", "LA", "PA", "RGBa", "La"}
_HIGH = {"I", "F"}


@dataclass(frozen=True)
class ImageHeader:
    """What the header says: size (W, H), Pillow mode, and whether each sample has 16 bits."""

    path: Path
    width: int
    height: int
    mode: str
    bits16: bool


def _is_16bit(im) -> bool:
    raw = getattr(getattr(im, "png", None), "im_rawmode", "") or ""
    tiles = " ".join(str(getattr(t, "args", t)) for t in (getattr(im, "tile", None) or []))
    return im.mode.startswith("I;16") or ";16" in raw or ";16" in tiles


def _open(path: Path, max_pixels: int):
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # sizes between Pillow's two limits: refused below, with our message
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            im = Image.open(path)
    except Image.DecompressionBombError as e:  # Pillow's own header check (2× its limit)
        raise DataError(f"{path}: image too large ({e}); refused before decoding") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise DataError(f"{path}: not a readable image ({e})") from None
    w, h = im.size
    if w * h > max_pixels:
        im.close()
        raise DataError(f"{path}: {w}x{h} = {w * h:,} pixels is more than the limit of {max_pixels:,}; "
                        "refused before decoding (decompression-bomb guard)")
    return im


def read_header(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> ImageHeader:
    """Size and mode from the file's header, nothing decoded; bombs and unreadable files → DataError."""
    p = Path(path)
    with _open(p, max_pixels) as im:
        return ImageHeader(p, im.size[0], im.size[1], im.mode, _is_16bit(im))


def _refusal(mode: str, bits16: bool) -> str | None:
    if bits16 or mode.startswith("I;16"):
        return "16 bits per sample; 8-bit images are required, convert it first (e.g. round(v / 257))"
    if mode in _HIGH:
        return f"{'32-bit integer' if mode == 'I' else '32-bit float'} samples; 8-bit images are required"
    if mode == "CMYK":
        return "CMYK; convert it to RGB with its colour profile first"
    if mode not in {"RGB", "YCbCr", "P"} | _GREY | _ALPHA:
        return "not an RGB, greyscale or palette image; convert it to 8-bit RGB first"
    return None


def read_u8(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, str | None]:
    """An image file → (H, W, 3) uint8 RGB array (C-contiguous) and a note (None for plain RGB files).

    Every rule of the module docstring; refusals are a one-line :class:`DataError` naming the file and mode.
    """
    from PIL import Image

    p = Path(path)
    try:
        with _open(p, max_pixels) as im:
            mode, problem = im.mode, _refusal(im.mode, _is_16bit(im))
            if problem:
                raise DataError(f"{p}: image mode {mode}: {problem}")
            note = None
            if mode == "P" and "transparency" not in im.info:
                note, rgb = "palette image expanded to RGB", im.convert("RGB")
            elif mode in _ALPHA or mode == "P":
                rgba = np.asarray(im.convert("RGBA"))
                if (rgba[..., 3] != 255).any():
                    raise DataError(f"{p}: image mode {mode} has transparent pixels; RGB is required "
                                    "(flatten it onto a background first)")
                note = f"opaque alpha channel ({mode}) dropped"
                if mode in ("LA", "La"):
                    note = f"greyscale ({mode}) read as 3 equal channels, opaque alpha dropped"
                return np.ascontiguousarray(rgba[..., :3]), note
            elif mode in _GREY:
                note, rgb = f"greyscale ({mode}) read as 3 equal channels", im.convert("RGB")
            elif mode == "YCbCr":
                rgb = im.convert("RGB")
            else:
                rgb = im
            arr = np.array(rgb, dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{p}: not a readable image ({e})") from None
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise DataError(f"{p}: decoded to an array of shape {arr.shape}, not RGB")
    return arr, note


def to_tensor(arr: np.ndarray):
    """(H, W, 3) uint8 → (3, H, W) float32 torch tensor in [0, 1]."""
    import torch

    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1).float().div_(255.0)


def list_images(folder: str | Path) -> list[Path]:
    """Image files (``IMAGE_SUFFIXES``, any case) directly inside ``folder``, sorted by name; hidden files and
    other files are ignored."""
    d = Path(folder)
    if not d.exists():
        raise DataError(f"image folder not found: {d}")
    if not d.is_dir():
        raise DataError(f"not a folder: {d}")
    files = sorted(p for p in d.iterdir() if p.is_file() and not p.name.startswith(".")
                   and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise DataError(f"no images ({'/'.join(IMAGE_SUFFIXES)}) in {d}")
    return files


__all__ = ["IMAGE_SUFFIXES", "MAX_PIXELS", "ImageHeader", "list_images", "read_header", "read_u8", "to_tensor"]

"""Image files by the field's conventions: every mode rule of sr_compress.data.images, one line per refusal."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from sr_compress.data.datasets import load_images
from sr_compress.data.images import read_header, read_u8
from sr_compress.errors import DataError


def _rgb(h: int = 12, w: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _png_header(path: Path, w: int, h: int, depth: int = 8, colour: int = 2, data: bytes | None = None) -> Path:
    """A PNG written by hand (16-bit RGB, or a header that promises a huge image and holds no pixels)."""
    def chunk(t: bytes, d: bytes) -> bytes:
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))

    body = chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 0))
    if data is not None:
        body += chunk(b"IDAT", zlib.compress(data))
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + body + chunk(b"IEND", b""))
    return path


def test_rgb_is_read_as_is_without_a_note(tmp_path):
    a = _rgb()
    Image.fromarray(a).save(tmp_path / "a.png")
    arr, note = read_u8(tmp_path / "a.png")
    assert note is None and arr.dtype == np.uint8 and np.array_equal(arr, a)


@pytest.mark.parametrize("mode", ["L", "1"])
def test_greyscale_becomes_three_equal_channels_and_says_so(tmp_path, mode):
    im = Image.fromarray(_rgb()).convert(mode)
    im.save(tmp_path / "g.png")
    arr, note = read_u8(tmp_path / "g.png")
    grey = np.asarray(im.convert("L"))
    assert arr.shape == (12, 10, 3) and all(np.array_equal(arr[..., c], grey) for c in range(3))
    assert note == f"greyscale ({mode}) read as 3 equal channels"
    (img,) = load_images(tmp_path)
    assert img.note == note and img.hr.shape == (3, 12, 10)


def test_palette_is_expanded_and_opaque_alpha_dropped(tmp_path):
    a = _rgb()
    Image.fromarray(a).convert("P").save(tmp_path / "p.png")
    arr, note = read_u8(tmp_path / "p.png")
    assert note == "palette image expanded to RGB"
    assert np.array_equal(arr, np.asarray(Image.open(tmp_path / "p.png").convert("RGB")))
    Image.fromarray(np.dstack([a, np.full(a.shape[:2], 255, np.uint8)])).save(tmp_path / "o.png")
    arr, note = read_u8(tmp_path / "o.png")
    assert np.array_equal(arr, a) and note == "opaque alpha channel (RGBA) dropped"
    Image.fromarray(np.dstack([a[..., 0], np.full(a.shape[:2], 255, np.uint8)]), "LA").save(tmp_path / "la.png")
    arr, note = read_u8(tmp_path / "la.png")
    assert np.array_equal(arr[..., 2], a[..., 0]) and note.startswith("greyscale (LA) read as 3 equal")


def test_transparency_is_refused(tmp_path):
    a = _rgb()
    alpha = np.full(a.shape[:2], 255, np.uint8)
    alpha[3, 4] = 0
    Image.fromarray(np.dstack([a, alpha])).save(tmp_path / "t.png")
    with pytest.raises(DataError, match=r"t.png: image mode RGBA has transparent pixels"):
        read_u8(tmp_path / "t.png")
    p = Image.fromarray(a).convert("P")
    p.info["transparency"] = int(np.asarray(p)[0, 0])
    p.save(tmp_path / "pt.png", transparency=p.info["transparency"])
    with pytest.raises(DataError, match=r"pt.png: image mode P has transparent pixels"):
        read_u8(tmp_path / "pt.png")


@pytest.mark.parametrize("make,match", [
    (lambda d: Image.fromarray(np.zeros((8, 8), np.uint16) + 300).save(d / "x.png"), r"I;16: 16 bits per sample"),
    (lambda d: _png_header(d / "x.png", 5, 4, depth=16, colour=2,
                           data=b"".join(b"\0" + bytes(30) for _ in range(4))), r"RGB: 16 bits per sample"),
    (lambda d: Image.fromarray(np.zeros((8, 8), np.float32)).save(d / "x.tif"), r"F: 32-bit float samples"),
    (lambda d: Image.fromarray(_rgb()).convert("CMYK").save(d / "x.jpg"), r"CMYK: CMYK; convert it to RGB"),
    (lambda d: Image.fromarray(_rgb()).convert("LAB").save(d / "x.tif"), r"not an RGB, greyscale or palette"),
    (lambda d: (d / "x.png").write_bytes(b"not an image"), r"x.png: not a readable image"),
])
def test_other_modes_are_refused_in_one_line(tmp_path, make, match):
    make(tmp_path)
    (path,) = [p for p in tmp_path.iterdir()]
    with pytest.raises(DataError, match=match) as info:
        read_u8(path)
    assert "\n" not in str(info.value)


def test_decompression_bombs_are_refused_from_the_header(tmp_path):
    """Headers promising huge images (no pixel data at all): refused before any decoding is tried."""
    big = _png_header(tmp_path / "big.png", 20000, 10000)  # 200 Mpx: between Pillow's warning and error limits
    with pytest.raises(DataError, match=r"big.png: .*200,?000,?000 pixels.*refused before decoding"):
        read_u8(big)
    huge = _png_header(tmp_path / "huge.png", 100000, 100000)  # Pillow's own limit refuses it at open
    with pytest.raises(DataError, match="huge.png: image too large.*refused before decoding"):
        read_header(huge)
    Image.fromarray(_rgb(40, 40)).save(tmp_path / "ok.png")
    with pytest.raises(DataError, match="1,600 pixels is more than the limit of 1,000"):
        read_u8(tmp_path / "ok.png", max_pixels=1000)
    assert read_header(tmp_path / "ok.png").width == 40

"""Before/after crops."""

import torch
from PIL import Image

from sr_compress.visual import busiest_window, comparison_image, save_comparison


def test_busiest_window_finds_the_detail():
    hr = torch.zeros(3, 64, 80)
    hr[:, 40:56, 8:24] = torch.rand(3, 16, 16)  # the only texture
    y, x = busiest_window(hr, 16)
    assert abs(y - 40) <= 4 and abs(x - 8) <= 4


def test_comparison_image_layout(tmp_path):
    hr = torch.rand(3, 50, 60)
    rows = [("a", [("bicubic", hr * 0.5), ("model", hr), ("HR", hr)]), ("b", [("bicubic", hr), ("HR", hr)])]
    img = comparison_image(rows, box=20, zoom=3)
    assert img.size == (4 + 3 * (60 + 4), 4 + 2 * (60 + 16 + 4))
    path = save_comparison(tmp_path / "c.png", rows, box=20, zoom=3)
    with Image.open(path) as im:
        assert im.size == img.size and im.mode == "RGB"

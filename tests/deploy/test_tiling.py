"""Exact tiled inference: tiled output == whole-image output for every registered arch (torch and ONNX)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers.models import tiny_model

from sr_compress.deploy import tiling
from sr_compress.deploy.onnx import export_onnx, ort_session
from sr_compress.errors import ConfigError
from sr_compress.infer import super_resolve
from sr_compress.models import list_models, model_class

# nets whose output depends on the whole image (IMDN's CCA) or on a pooling grid tied to the image size (ESA)
# cannot be tiled exactly; they are refused (test_global_context_nets_refuse_to_tile)
LOCAL = [a for a in list_models() if model_class(a).global_context is None]
GLOBAL = [a for a in list_models() if model_class(a).global_context is not None]

EXACT = 1e-5


def _model(arch: str, scale: int):
    return tiny_model(arch, scale).eval()


def _rand(*shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=torch.Generator().manual_seed(1))


def test_tile_spans_cover_the_range_in_balanced_pieces():
    for size, tile in [(37, 5), (29, 13), (16, 16), (17, 16), (5, 100), (1, 1)]:
        spans = tiling.tile_spans(size, tile)
        assert spans[0][0] == 0 and spans[-1][1] == size
        assert all(end == start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))
        lengths = [b - a for a, b in spans]
        assert max(lengths) <= tile and max(lengths) - min(lengths) <= 1
    assert tiling.tile_spans(17, 16) == [(0, 8), (8, 17)]


# radius by hand: Σ conv reach / scale so far (ConvTranspose: reach / stride), ceil
@pytest.mark.parametrize(("arch", "scale", "radius"), [
    ("plain", 2, 4),  # 4 convs 3×3 at LR
    ("vdsr", 2, 5),  # 5 convs at the (HR) input resolution
    ("edsr", 2, 8),  # head 1 + 2 blocks × 2 + body_conv 1 + upsampler conv 1 + last conv ½ = 7.5
    ("msrresnet", 2, 7),  # head 1 + 4 + upsampler 1 + two HR convs ½ + ½
    ("fsrcnn", 2, 6),  # 5×5: 2, two 3×3: 2, ConvTranspose 9 pad 4 stride 2: 2
    ("fsrcnn", 4, 5),  # ... stride 4: 1
])
def test_receptive_radius_from_structure(arch, scale, radius):
    m = _model(arch, scale)
    assert tiling.receptive_radius(m) == radius


@pytest.mark.parametrize("arch", LOCAL)
@pytest.mark.parametrize("scale", [2, 3, 4])
def test_tiled_equals_whole_image_torch(arch, scale):
    m = _model(arch, scale)
    prof = tiling.tile_profile(m)
    assert prof.scale == (1 if m.pre_upsample else scale)
    x = _rand(2, m.channels, 37, 29)  # odd sizes; none of the tiles divides them
    with torch.no_grad():
        ref = m(x)
        for tile in (6, 13, 20):
            got = tiling.tiled_forward(m, x, prof.scale, tile, prof.halo)
            assert got.shape == ref.shape
            assert (got - ref).abs().max().item() <= EXACT


@pytest.mark.parametrize("arch", LOCAL)
def test_a_halo_below_the_radius_is_not_exact(arch):
    m = _model(arch, 2)
    prof = tiling.tile_profile(m)
    x = _rand(1, m.channels, 30, 30)
    with torch.no_grad():
        got = tiling.tiled_forward(m, x, prof.scale, 7, prof.halo // 3)
        assert (got - m(x)).abs().max().item() > 1e-4


@pytest.mark.parametrize("arch", LOCAL)
def test_tiled_equals_whole_image_onnx(arch, tmp_path):
    m = _model(arch, 3)
    export_onnx(m, tmp_path / "m.onnx")
    session = ort_session(tmp_path / "m.onnx")
    prof = tiling.tile_profile(session)  # from the export's metadata
    graph_prof = tiling.tile_profile(__import__("onnx").load(tmp_path / "m.onnx"))
    assert prof == graph_prof and prof.halo <= tiling.receptive_radius(m)
    module_bytes = tiling.tile_profile(m).bytes_per_px
    if arch == "srvgg":  # its output skip (nearest upsample + add) is functional: the module hooks miss the add
        assert module_bytes < prof.bytes_per_px
    else:
        assert prof.bytes_per_px == module_bytes  # graph and module estimates agree
    fn = tiling.onnx_fn(session)
    x = _rand(1, m.channels, 31, 26).numpy()
    ref = fn(x)
    for tile in (7, 16):
        got = tiling.tiled_forward(fn, x, prof.scale, tile, prof.halo)
        assert isinstance(got, np.ndarray) and got.shape == ref.shape
        assert np.abs(got - ref).max() <= EXACT


def test_tile_for_memory_picks_the_largest_tile_that_fits():
    m = _model("plain", 2)
    prof = tiling.tile_profile(m)
    # widest: PixelShuffle in (12 ch) + out (3 ch at 4 px) = 24 floats per LR pixel
    assert prof.bytes_per_px == 96.0 and prof.halo == 4
    for cap in (30_000, 123_456, 10**6):
        t = tiling.tile_for_memory(m, cap)
        def need(side: int) -> float:
            return (side + 2 * prof.halo) ** 2 * prof.bytes_per_px

        assert need(t) <= cap < need(t + 1)
    with pytest.raises(ConfigError, match="too small"):
        tiling.tile_for_memory(m, 20_000)  # 8-px tiles + halo need 24,576 B


@pytest.mark.parametrize("arch", LOCAL)
def test_upscale_tiled_equals_super_resolve(arch):
    m = _model(arch, 2)
    lr = _rand(1, 3, 23, 30)
    ref = super_resolve(m, lr)
    got = tiling.upscale_tiled(m, lr, tile=8)
    assert got.shape == ref.shape == (1, 3, 46, 60)
    assert (got - ref).abs().max().item() <= EXACT
    prof = tiling.tile_profile(m)
    cap = prof.bytes_per_px * (10 + 2 * prof.halo) ** 2  # room for 10-px tiles of the network input
    capped = tiling.upscale_tiled(m, lr, max_bytes=cap)
    assert (capped - ref).abs().max().item() <= EXACT


@pytest.mark.parametrize("arch", ["vdsr", "edsr"])
def test_upscale_tiled_with_an_onnx_session(arch, tmp_path):
    m = _model(arch, 3)
    export_onnx(m, tmp_path / "m.onnx")
    lr = _rand(1, 3, 20, 17)
    got = tiling.upscale_tiled(ort_session(tmp_path / "m.onnx"), lr, tile=8)
    assert (got - super_resolve(m, lr)).abs().max().item() <= EXACT


def test_upscale_onnx_files_matches_the_checkpoint_path(tmp_path):
    from PIL import Image

    from sr_compress.ops.upscale import upscale_files

    m = _model("vdsr", 2)
    export_onnx(m, tmp_path / "m.onnx")
    rgb = (_rand(3, 18, 21).permute(1, 2, 0).numpy() * 255).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "in.png")
    src = [tmp_path / "in.png"]
    onnx_out = upscale_files(tmp_path / "m.onnx", src, tmp_path / "a.png", tile=8)
    torch_out = upscale_files(m, [tmp_path / "in.png"], tmp_path / "b.png")
    a, b = (np.asarray(Image.open(p[0]), dtype=int) for p in (onnx_out, torch_out))
    assert a.shape == (36, 42, 3) and np.abs(a - b).max() <= 1


def test_bad_tiling_arguments_are_config_errors():
    m = _model("plain", 2)
    x = _rand(1, 3, 10, 10)
    with pytest.raises(ConfigError):
        tiling.tiled_forward(m, x, 2, 0, 4)
    with pytest.raises(ConfigError, match="scale implies"):
        tiling.tiled_forward(m, x, 3, 5, 4)  # wrong scale for this network
    with pytest.raises(ConfigError, match="metadata"):
        tiling.profile_from_metadata({"scale": "2"})


@pytest.mark.parametrize("arch", GLOBAL)
def test_global_context_nets_refuse_to_tile(arch, tmp_path):
    m = _model(arch, 2)
    lr = _rand(1, 3, 23, 30)
    with pytest.raises(ConfigError, match=f"{arch} cannot be tiled exactly: .*run it on whole images"):
        tiling.upscale_tiled(m, lr, tile=8)
    assert torch.equal(tiling.upscale_tiled(m, lr), super_resolve(m, lr))  # no tile: one whole-image call
    export_onnx(m, tmp_path / "m.onnx")
    session = ort_session(tmp_path / "m.onnx")
    with pytest.raises(ConfigError, match="depends on the whole image"):
        tiling.upscale_tiled(session, lr, tile=8)
    got = tiling.upscale_tiled(session, lr)
    assert (got - super_resolve(m, lr)).abs().max().item() <= EXACT

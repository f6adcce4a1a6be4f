"""Truncated ASRN models through the deployment side: export + validation, bench, exact tiled upscale; the
user-given halo of export / upscale."""

from __future__ import annotations

import json

import pytest
import torch

from sr_compress.checkpoint import save_checkpoint
from sr_compress.compress.truncate import truncate
from sr_compress.deploy import tiling
from sr_compress.deploy.onnx import export_onnx, ort_session, read_metadata
from sr_compress.models import build_model, tiny_hparams


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    folder = tmp_path_factory.mktemp("asrn")
    torch.manual_seed(0)
    full = build_model("asrn", **{**tiny_hparams("asrn", 2), "n_blocks": 3}).eval()
    paths = {}
    for k in (3, 1):
        m = truncate(full, blocks=k)[0]
        paths[k] = folder / f"asrn_k{k}.onnx"
        rep = export_onnx(m, paths[k])  # raises unless ORT matches PyTorch on random and real inputs
        assert rep.max_err_random <= 1e-4 and rep.max_err_real <= 1e-4
        assert rep.receptive_radius == {3: 15, 1: 7}[k]  # head 1 + 4 per MAB + upsampler 2
        assert not rep.is_plain
    return full, paths


def test_tiled_upscale_equals_whole_image(exported):
    full, paths = exported
    lr = torch.rand(1, 3, 37, 29, generator=torch.Generator().manual_seed(3))
    whole = tiling.upscale_tiled(full, lr)
    for tile in (8, 13):
        assert (tiling.upscale_tiled(full, lr, tile=tile) - whole).abs().max() <= 1e-5
    session = ort_session(paths[3])
    ort_whole = tiling.upscale_tiled(session, lr)
    assert (ort_whole - whole).abs().max() <= 1e-4
    assert (tiling.upscale_tiled(session, lr, tile=9) - ort_whole).abs().max() <= 1e-5


def test_bench_reports_truncated_models(exported):
    from sr_compress.deploy.bench import bench_models

    _, paths = exported
    res = bench_models([paths[3], paths[1]], size=(96, 64), warmup=0, runs=1, memory=False, peak=False,
                       tune_malloc=False, threads=1)
    full, cut = res.models
    assert full.arch == cut.arch == "asrn" and full.output_shape[-2:] == [64, 96]
    assert full.flops > cut.flops > 0 and full.params > cut.params > 0
    assert full.latency.median_s > 0 and cut.latency.median_s > 0


def test_given_halo_is_recorded_and_used(tmp_path, invoke):
    torch.manual_seed(0)
    m = build_model("asrn", **tiny_hparams("asrn", 2)).eval()
    ckpt = save_checkpoint(m, tmp_path / "m.pt")
    code, out, err = invoke("export", ckpt, "-o", tmp_path / "m.onnx", "--halo", "20", "--json")
    assert code == 0, err
    assert json.loads(out)["receptive_radius"] == 20
    import onnx

    assert read_metadata(onnx.load(tmp_path / "m.onnx"))[tiling.META_RADIUS] == "20"
    assert tiling.tile_profile(m, halo=4, scale=2).halo == 4
    with pytest.raises(Exception, match="halo"):
        tiling.tile_profile(m, halo=-1, scale=2)
    from PIL import Image

    Image.new("RGB", (24, 20), (120, 60, 30)).save(tmp_path / "a.png")
    code, _, err = invoke("upscale", ckpt, tmp_path / "a.png", "-o", tmp_path / "a_x2.png", "--tile", "8",
                          "--halo", "11")
    assert code == 0, err
    assert Image.open(tmp_path / "a_x2.png").size == (48, 40)

"""CI memory-footprint report: export two small reference models and gate them on export/budgets.toml.

Run by ``.ci/run`` after the tests (well under a minute on two cores)::

    .venv/bin/python benchmarks/ci_footprint.py [--budget export/budgets.toml] [--report DIR]

It exports a plain chain (8 convs of 32, ×2) and EDSR (4 blocks of 32, ×2) with fixed random weights (latency
and memory do not depend on the weights), then runs ``srcompress bench`` on them with the budgets file: the
table is printed, the settings come from the file's ``[defaults]``, and the exit code is 1 when a model is
over budget (one line per violation on stderr).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# name (= the [models.NAME] table in budgets.toml) → (arch, hparams)
REFERENCE = {
    "plain_d8w32_x2": ("plain", {"scale": 2, "depth": 8, "width": 32}),
    "edsr_r4f32_x2": ("edsr", {"scale": 2, "n_feats": 32, "n_blocks": 4}),
}


def export_reference(folder: Path, seed: int = 0) -> list[Path]:
    """The reference models as ONNX files in ``folder`` (exported, checked, not validated: speed)."""
    import torch

    from sr_compress.deploy.onnx import export_onnx
    from sr_compress.models import build_model, plain_layers

    paths = []
    for name, (arch, hp) in REFERENCE.items():
        torch.manual_seed(seed)
        if arch == "plain":
            hp = {"scale": hp["scale"], "layers": plain_layers(hp["depth"], hp["width"], hp["scale"])}
        model = build_model(arch, **hp)
        path = folder / f"{name}.onnx"
        export_onnx(model, path, validate=False)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default=str(REPO / "export" / "budgets.toml"), help="budgets TOML")
    p.add_argument("--report", default=None, help="also write report.md/json/png into this folder")
    args = p.parse_args(argv)
    from sr_compress.cli import cli
    from sr_compress.cli._common import run_cli

    with tempfile.TemporaryDirectory(prefix="srcompress-ci-") as tmp:
        paths = export_reference(Path(tmp))
        extra = ["--report", args.report, "--force"] if args.report else []
        run_cli(cli, ["bench", *map(str, paths), "--budget", args.budget, *extra])  # exits with the verdict


if __name__ == "__main__":
    main()

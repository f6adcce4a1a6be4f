"""CI memory-footprint report: the reference models and the students the pipeline makes of them, gated.

Run by ``.ci/run`` after the tests (about a minute on two cores)::

    .venv/bin/python benchmarks/ci_footprint.py [--budget export/budgets.toml] [--report DIR]
    .venv/bin/python benchmarks/ci_footprint.py --update-baseline     # after a change meant to move the numbers

It exports a plain chain (8 convs of 32, ×2) and EDSR (4 blocks of 32, ×2) with fixed random weights (latency
and memory do not depend on the weights), and the two students the pipeline makes of that EDSR — ``slim``
ρ = 0.5 and ``plainify`` at width 16 with a one-shuffle tail — then runs ``srcompress bench`` on all four with the
budgets file and against the committed baseline (``export/ci_baseline.json``): the table and the per-model
deltas are printed, the settings come from the budgets file's ``[defaults]``, and the exit code is 1 when a
model is over budget or regressed (one line per violation on stderr). The baseline is judged on what does not
depend on the machine (params, GFLOP, bound) strictly and on peak memory and latency loosely.
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


BASELINE = REPO / "export" / "ci_baseline.json"
#: loose on what depends on the machine and its load, strict (the defaults) on params, GFLOP and bound
REGRESSION = ("peak_mb=25", "latency_ms=300")


def reference_models(seed: int = 0) -> dict:
    """name → model: the reference nets, then the pipeline's students of the EDSR (slim, plainify)."""
    import torch

    from sr_compress.compress.plainify import plainify
    from sr_compress.compress.slim import slim
    from sr_compress.models import build_model, plain_layers

    models = {}
    for name, (arch, hp) in REFERENCE.items():
        torch.manual_seed(seed)
        if arch == "plain":
            hp = {"scale": hp["scale"], "layers": plain_layers(hp["depth"], hp["width"], hp["scale"])}
        models[name] = build_model(arch, **hp)
    edsr = models["edsr_r4f32_x2"]
    models["edsr_r4f32_x2_slim0.5"] = slim(edsr, 0.5, seed=seed)[0]
    # a fixed width, not ε: ranks found by ε could move by one on another CPU's floating point, and the
    # baseline holds params and GFLOP exactly
    models["edsr_r4f32_x2_plain"] = plainify(edsr, width=16, tail="shuffle", seed=seed, patches=4).model
    return models


def export_reference(folder: Path, seed: int = 0) -> list[Path]:
    """The models as ONNX files in ``folder`` (exported, checked, not validated: speed)."""
    from sr_compress.deploy.onnx import export_onnx

    paths = []
    for name, model in reference_models(seed).items():
        path = folder / f"{name}.onnx"
        export_onnx(model, path, validate=False)
        paths.append(path)
    return paths


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--budget", default=str(REPO / "export" / "budgets.toml"), help="budgets TOML")
    p.add_argument("--report", default=None, help="also write report.md/json/png into this folder")
    p.add_argument("--update-baseline", action="store_true", help=f"write this run's report.json to {BASELINE}")
    args = p.parse_args(argv)
    from sr_compress.cli import cli
    from sr_compress.cli._common import run_cli

    with tempfile.TemporaryDirectory(prefix="srcompress-ci-") as tmp:
        paths = export_reference(Path(tmp))
        report = args.report or (str(Path(tmp) / "report") if args.update_baseline else None)
        extra = ["--report", report, "--force"] if report else []
        if BASELINE.is_file() and not args.update_baseline:
            extra += ["--baseline", str(BASELINE), *(f"--max-regression={r}" for r in REGRESSION)]
        try:
            run_cli(cli, ["bench", *map(str, paths), "--budget", args.budget, *extra])
        except SystemExit as e:
            if e.code:
                raise
        if args.update_baseline:
            import shutil

            shutil.copyfile(Path(report) / "report.json", BASELINE)
            print(f"wrote {BASELINE.relative_to(REPO)}")


if __name__ == "__main__":
    main()

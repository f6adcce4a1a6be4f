"""``srcompress finetune``: train a (slimmed) student further with a fine-tuning strategy and its teacher."""

from __future__ import annotations

from typing import Any

import click

from ._common import console
from ._training import parse_pairs, strategy_options, teacher_overrides, train_config, training_options


@click.command("finetune")
@click.argument("student", type=click.Path(dir_okay=False))
@strategy_options(required=True)
@training_options
def finetune(student: str, strategy: str, opts: tuple[str, ...], teacher: str | None, teacher_scale: int | None,
             data: str, degradation: str, preset: str | None, extra: tuple[str, ...], resume: bool,
             cache_dir: str | None, output: str,
             seed: int, force: bool, **settings: Any) -> None:
    """Fine-tune STUDENT (any supported checkpoint) with a strategy (--strategy lists them).

    The strategies that learn from a teacher (e.g. kd, ail, memsr) need --teacher (same scale and colour
    space as the student); the others refuse one. The teacher may be any SR net exported to ONNX (kd, ail:
    they use its output only); kd and ail read its output from outputs stored once per training image
    (--no-teacher-cache: run it on every batch).
    Strategy options come as --opt key=value (docs/strategies.md lists them); --preset ail-official gives
    the AIL paper's schedule (SGD 0.1 reset per round, 11 rounds: --steps must be a multiple of 11).

    \b
    Examples:
      srcompress finetune student.pt --teacher teacher.pt --strategy kd -o student_kd.pt
      srcompress finetune student.pt --teacher IMDN_x2.onnx --strategy kd -o student_kd.pt
      srcompress finetune s13.pt --teacher vdsr_teacher_x234.pt --strategy ail --steps 2200 \\
          --set rounds=11 -o s13_ail.pt
      srcompress finetune s13.pt --teacher vdsr_teacher_x234.pt --strategy ail --preset ail-official \\
          --steps 110000 -o s13_ail.pt
      srcompress finetune student.pt --strategy pspl --opt ssim_range=faithful -o student_pspl.pt
    """
    from ..ops.train import finetune as finetune_model
    from ..ops.train import is_main_process
    from ._progress import training_progress

    teacher_over = teacher_overrides(settings)
    config = train_config(settings, preset=preset, extra=extra, seed=seed)
    with training_progress() as progress:
        out = finetune_model(student, out=output, config=config, strategy=strategy,
                             strategy_options=parse_pairs(opts, "--opt"), teacher=teacher,
                             teacher_scale=teacher_scale, teacher_overrides=teacher_over, data=data,
                             degradation=degradation, resume=resume, force=force, progress=progress,
                             cache_dir=cache_dir, cache_progress=progress)
    if is_main_process():
        console.print(f"fine-tuned {out.model.arch} ×{out.model.scale} with {strategy} for {out.steps} steps in "
                      f"{out.seconds:.0f} s (final loss {out.final_loss:.4g}) → {out.path}")
        if out.teacher_cache is not None:
            c = out.teacher_cache
            console.print(f"teacher outputs stored once per image: {c.built} built, {c.reused} reused, "
                          f"{c.bytes / 2**20:.1f} MiB in {c.root or 'memory'}")

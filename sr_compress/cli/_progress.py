"""A rich progress bar fed by the trainer's progress callback (dicts with step, steps, loss, lr) and by the image
cache while it is built (dicts with done, total, built)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ._common import err_console


@contextmanager
def training_progress() -> Iterator[Callable[[dict], None]]:
    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), console=err_console, transient=True) as bar:
        tasks: dict = {}
        last_val: dict[int, float] = {}

        def update(event: dict) -> None:
            if "built" in event:  # the image cache being built (sr_compress.data.cache): its own bar
                if "cache" not in tasks:
                    tasks["cache"] = bar.add_task("cache", total=event["total"], info="decoding images once")
                bar.update(tasks["cache"], completed=event["done"], info=f"{event['built']} decoded")
                return
            total = int(event.get("steps") or event.get("total_steps") or 0)
            key = total
            if key not in tasks:
                tasks[key] = bar.add_task("train", total=total or None, info="")
            info = f"loss {event['loss']:.4g}" if "loss" in event else ""
            if "val_psnr" in event:
                last_val[key] = event["val_psnr"]
            if key in last_val:
                info += f"  val {last_val[key]:.2f} dB"
            bar.update(tasks[key], completed=int(event.get("step", 0)), info=info)

        yield update

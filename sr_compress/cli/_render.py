"""Rich renderings shared by several commands."""

from __future__ import annotations

from rich.table import Table

from ._common import err_console


def show_guesses(guesses: list[str]) -> None:
    for g in guesses:
        err_console.print(f"[yellow]guessed[/] {g}")


def eval_table(reports: list, title: str = "") -> Table:
    """Per-image rows and a mean row; one column group per method (model, bicubic, …)."""
    t = Table(title=title, caption="Y = BT.601 luma, 8-bit, scale px cropped; SSIM on Y; RGB PSNR over all channels")
    t.add_column("image")
    for r in reports:
        t.add_column(f"{r.method}\nY-PSNR", justify="right")
        t.add_column("SSIM", justify="right")
        t.add_column("RGB-PSNR", justify="right")
    names = [i.name for i in reports[0].images]
    for k, name in enumerate(names):
        t.add_row(name, *[c for r in reports for c in _cells(r.images[k])])
    t.add_section()
    t.add_row("[bold]mean[/]", *[f"[bold]{c}[/]" for r in reports for c in _cells(r.mean)])
    return t


def _cells(s) -> list[str]:
    return [f"{s.psnr_y:.2f}", f"{s.ssim_y:.4f}", f"{s.psnr_rgb:.2f}"]

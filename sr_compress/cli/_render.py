"""Rich renderings shared by several commands."""

from __future__ import annotations

from rich.table import Table

from ._common import console, err_console


def show_guesses(guesses: list[str]) -> None:
    for g in guesses:
        err_console.print(f"[yellow]guessed[/] {g}")


def eval_table(reports: list, title: str = "") -> Table:
    """Per-image rows and a mean row; one column group per method (model, bicubic, …)."""
    from ..evaluate import Y_CONVENTIONS

    y = getattr(reports[0], "y", "float") if reports else "float"
    t = Table(title=title, caption=f"Y convention {y}: {Y_CONVENTIONS[y]}; scale px cropped; SSIM on Y; RGB PSNR "
                                   "over all channels")
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


def bench_table(result, psnr: dict[str, float] | None = None) -> None:
    """One column per model, one row per measure (fits a terminal for a handful of models)."""
    from ..deploy.report import settings_line, table_rows

    headers, rows = table_rows(result, psnr or None)
    t = Table()
    t.add_column("")
    for row in rows:
        t.add_column(row[0], justify="right")
    for k, h in enumerate(headers[1:], start=1):
        t.add_row(h, *[row[k] for row in rows])
    console.print(t)
    console.print(f"[dim]{settings_line(result)}[/]")

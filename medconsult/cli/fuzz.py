"""`medconsult fuzz`: seeded mutations of real radiographs through the image intake and the imaging tools."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from medconsult.cli.common import console, fail, invocation_settings


def fuzz(
    count: int = typer.Option(1000, min=1, help="files to generate"),
    seed: int = typer.Option(7, help="the same seed writes the same files"),
    timeout_s: float = typer.Option(30.0, help="per tool call; past it the call counts as a hang"),
    out: Path = typer.Option(Path("out") / "fuzz", help="folder: fuzz.json, and the files that crashed or hung"),
) -> None:
    """Run the fuzz; exits 1 when any file crashed or hung (the report names each one)."""
    from medconsult.evals.fuzz_images import run_fuzz

    report = run_fuzz(invocation_settings().resolved_data_dir, out, count=count, seed=seed, timeout_s=timeout_s,
                      log=console.print)
    summary = {key: report[key] for key in ("files", "outcomes", "crashes", "hangs", "peak_rss_mb", "seconds")}
    console.print(json.dumps(summary))
    if report["crashes"] or report["hangs"]:
        fail(f"{report['crashes']} crash(es), {report['hangs']} hang(s): see {out / 'fuzz.json'}")

"""A 100-file sample of the image fuzz (`make fuzz` runs 1,000): every mutated file is accepted or refused with a
clear error; none crashes a tool or runs past its time limit, and the same seed writes the same files."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import DATA_DIR
from medconsult.evals.fuzz_images import MUTATIONS, generate, run_fuzz

pytestmark = pytest.mark.integration


def test_a_hundred_mutated_radiographs_give_no_crash_and_no_hang(tmp_path: Path):
    report = run_fuzz(DATA_DIR, tmp_path / "fuzz", count=100, seed=11, timeout_s=60, log=lambda line: None)
    assert report["files"] == 100 and sum(report["outcomes"].values()) == 100
    assert (report["crashes"], report["hangs"]) == (0, 0), report["problems"]
    assert report["outcomes"].get("rejected", 0) >= 50  # most mutants are refused, each with its reason
    assert set(report["by_mutation"]) == {*MUTATIONS, "oversized"}
    assert report["peak_rss_mb"] < 4096  # a decompression bomb is refused from its header, not decoded


def test_the_same_seed_writes_the_same_files():
    first, second = generate(DATA_DIR, 30, seed=3), generate(DATA_DIR, 30, seed=3)
    assert [(m.name, m.data) for m in first] == [(m.name, m.data) for m in second]
    assert [m.data for m in generate(DATA_DIR, 30, seed=4)] != [m.data for m in first]

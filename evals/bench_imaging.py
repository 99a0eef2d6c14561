"""Imaging benchmark (`make bench` -> out/bench.json): latency of segmentation, radiomics, the imaging branch and a
comparison of two films.

Timings are wall-clock on this machine with torch limited to the configured thread count; each figure is the
distribution over real images of the data folder, after one warm-up call.
"""

from __future__ import annotations

import os
import platform
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from medconsult.config import Settings
from medconsult.imaging import radiomics
from medconsult.imaging.io import normalise
from medconsult.imaging.segmentation import load_segmenter
from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.compare_radiographs import CompareRadiographsTool
from medconsult.tools.imaging.load_image import LoadImageTool
from medconsult.tools.imaging.radiomics_features import RadiomicsFeaturesTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsTool


def _summary(seconds: list[float]) -> dict[str, float]:
    values = sorted(seconds)
    return {
        "n": len(values),
        "p50_ms": round(1000 * statistics.median(values), 1),
        "p95_ms": round(1000 * values[min(len(values) - 1, int(round(0.95 * (len(values) - 1))))], 1),
        "mean_ms": round(1000 * statistics.fmean(values), 1),
        "max_ms": round(1000 * values[-1], 1),
    }


def _timed(function, *args):
    start = time.perf_counter()
    result = function(*args)
    return result, time.perf_counter() - start


def run_benchmark(settings: Settings, threads: int = 2, limit: int = 40) -> dict[str, Any]:
    torch.set_num_threads(threads)
    data = settings.resolved_data_dir
    seg_images = sorted((data / "seg_lung_v7_ccby" / "images").glob("*.png"))[:limit]
    case_images = sorted((data / "cxr_hannover_covid" / "png").glob("*.png"))[: max(5, limit // 2)]
    segmenter = load_segmenter(settings.seg_bundle)

    pixels = [np.asarray(Image.open(p).convert("L"), dtype=np.float32) for p in seg_images]
    segmenter.segment(pixels[0])  # warm-up
    segmentation, masks = [], []
    for image in pixels:
        result, seconds = _timed(segmenter.segment, image)
        segmentation.append(seconds)
        masks.append(result)

    features = []
    for image, result in zip(pixels, masks, strict=True):
        grey = (normalise(image) * 255).astype(np.uint8)
        _, seconds = _timed(
            lambda g=grey, m=result: radiomics.findings(radiomics.extract(g, m.right, m.left, None))
        )
        features.append(seconds)

    branch = []
    with tempfile.TemporaryDirectory() as work:
        context = ToolContext(settings, work_dir=Path(work))
        load, segment, describe = (
            LoadImageTool(context=context),
            SegmentLungsTool(context=context),
            RadiomicsFeaturesTool(context=context),
        )
        for path in case_images:
            start = time.perf_counter()
            load.invoke({"path": str(path)})
            seg = segment.invoke({"image": str(path)})
            describe.invoke(
                {"image": str(path), "right_mask": seg["right_mask_png"], "left_mask": seg["left_mask_png"]}
            )
            branch.append(time.perf_counter() - start)

    comparisons = []
    with tempfile.TemporaryDirectory() as work:
        compare = CompareRadiographsTool(context=ToolContext(settings, work_dir=Path(work)))
        for prior, current in zip(case_images, case_images[1:], strict=False):
            start = time.perf_counter()
            compare.invoke({"current": str(current), "prior": str(prior)})
            comparisons.append(time.perf_counter() - start)

    return {
        "comparison_per_pair": {**_summary(comparisons), "images": "cxr_hannover_covid PNG, consecutive files",
                                "includes": "compare_radiographs tool: read, check, segment and measure both films, "
                                            "compare, side-by-side overlay PNG"},
        "machine": {"cpus": os.cpu_count(), "torch_threads": threads, "python": platform.python_version(),
                    "torch": torch.__version__, "processor": platform.processor() or platform.machine()},
        "model": f"{segmenter.metadata['name']} {segmenter.metadata['version']}, input {segmenter.input_size} px",
        "segmentation_per_512px_image": {**_summary(segmentation), "images": "seg_lung_v7_ccby (longest side 512 px)",
                                          "includes": "normalise, resize, network, upsample, components, hole filling"},
        "radiomics_per_case": {**_summary(features), "regions": 8,
                               "includes": "feature extraction for both lungs and 6 zones, findings"},
        "imaging_branch_per_case": {**_summary(branch), "images": "cxr_hannover_covid PNG",
                                    "includes": "load_image + segment_lungs + radiomics_features tools, file I/O"},
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }

"""Fusion benchmark: embedding one case, similar-case queries against 100,000 stored vectors, and building it.

- embed: one radiograph (decode, encoder, projection) plus a short history and measurements, per case, after a
  warm-up; p50 / p95 over `cases` reference radiographs.
- query: a collection of `vectors` unit vectors in the latent space's dimensions (the real reference cases'
  embeddings, repeated with small perturbations to reach the count, so the index sees realistic neighbourhoods),
  all in the queried population's collection, in a temporary embedded Chroma store; p50 / p95 over `queries`
  queries of k = 5 with the patient exclusion the tool uses.
- build: the time to add the vectors (Chroma's HNSW insert), and for the real library the command's own figure.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from medconsult.config import Settings
from medconsult.fusion.cases import ReferenceCase, reference_cases
from medconsult.fusion.latent import embed
from medconsult.fusion.library import ReferenceLibrary, build, client
from medconsult.fusion.modalities import ModalityInputs
from medconsult.fusion.service import CaseView, FusionService


def run_fusion_benchmark(
    settings: Settings, *, vectors: int = 100_000, queries: int = 200, cases: int = 20, seed: int = 7
) -> dict:
    service = FusionService(settings)
    references = reference_cases(settings.resolved_data_dir)
    if not references:
        raise ValueError(f"{settings.resolved_data_dir}: no labelled cases to benchmark with")
    rng = np.random.default_rng(seed)
    chosen = [references[i] for i in rng.choice(len(references), size=min(cases, len(references)), replace=False)]
    embed_ms = _embedding_times(service, chosen)
    base = _embeddings(service, chosen)
    with tempfile.TemporaryDirectory(prefix="medconsult-bench-") as folder:  # 100k vectors: ~1 GB, never kept
        stored, build_s = _synthetic_library(Path(folder), base, vectors, rng)
        query_ms = _query_times(stored, base, queries, rng)
        del stored  # Chroma's handles on the folder go before it is removed
    return {
        "embed_case_ms": _percentiles(embed_ms),
        "embed_cases": len(embed_ms),
        "query_ms": _percentiles(query_ms),
        "queries": len(query_ms),
        "stored_vectors": vectors,
        "latent_dimensions": int(base.shape[1]),
        "insert_s": round(build_s, 1),
        "insert_vectors_per_s": round(vectors / build_s, 0),
        "k": 5,
    }


def _embedding_times(service: FusionService, chosen: list[ReferenceCase]) -> list[float]:
    service.estimate(_view(chosen[0]))  # warm-up: loads both encoders
    times = []
    for case in chosen:
        started = time.perf_counter()
        inputs, _ = service.inputs(_view(case))
        service.embedding(inputs)
        times.append((time.perf_counter() - started) * 1000)
    return times


def _view(case: ReferenceCase) -> CaseView:
    return CaseView(image=case.image, history=case.history, measurements=case.measurements,
                    population=case.population)


def _embeddings(service: FusionService, chosen: list[ReferenceCase]) -> np.ndarray:
    rows = [service.inputs(_view(c))[0] for c in chosen]
    merged = ModalityInputs(
        {m: np.concatenate([r.features[m] for r in rows]) for m in rows[0].features},
        {m: np.concatenate([r.present[m] for r in rows]) for m in rows[0].present},
    )
    return embed(service.latent.model, merged)


def _synthetic_library(folder: Path, base: np.ndarray, count: int, rng: np.random.Generator):
    vectors = base[rng.integers(0, len(base), size=count)] + rng.normal(scale=0.05, size=(count, base.shape[1]))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    fake = [
        ReferenceCase(case_id=f"bench-{i}", patient_group=f"bench-{i // 2}", source="bench",
                      population="adult", label="bacterial", finding="bench",
                      image=Path("/dev/null"))
        for i in range(count)
    ]
    chroma = client(Settings(index_dir=folder, chroma_url=None))
    started = time.perf_counter()
    build(chroma, "bench", fake, vectors.astype(np.float32))
    return ReferenceLibrary(chroma, "bench"), time.perf_counter() - started


def _query_times(library: ReferenceLibrary, base: np.ndarray, queries: int, rng: np.random.Generator) -> list[float]:
    for _ in range(5):  # warm-up
        library.nearest(base[0], 5, population="adult", exclude_mrn="MRN-0")
    times = []
    for _ in range(queries):
        query = base[rng.integers(0, len(base))] + rng.normal(scale=0.05, size=base.shape[1])
        started = time.perf_counter()
        library.nearest(query / np.linalg.norm(query), 5, population="adult", exclude_mrn="MRN-0")
        times.append((time.perf_counter() - started) * 1000)
    return times


def _percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": round(float(np.percentile(values, 50)), 2),
        "p95": round(float(np.percentile(values, 95)), 2),
        "max": round(float(np.max(values)), 2),
    }

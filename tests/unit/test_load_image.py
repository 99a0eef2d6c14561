from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import DATA_DIR
from medconsult.config import Settings
from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.load_image import LoadImageTool

SAMPLES = DATA_DIR / "dicom_cxr_samples"


@pytest.fixture
def tool(tmp_path: Path) -> LoadImageTool:
    return LoadImageTool(context=ToolContext(Settings(), work_dir=tmp_path))


@pytest.mark.parametrize(
    ("name", "size", "photometric"),
    [
        ("RG1_J2KI.dcm", (1841, 1955), "MONOCHROME1"),  # JPEG 2000
        ("RG1_derived_uncompressed_977x920.dcm", None, None),
        ("rsna_pneumonia_16d7f894.dcm", (1024, 1024), "MONOCHROME2"),  # JPEG baseline
    ],
)
def test_dicom_samples_decode_with_metadata(tool: LoadImageTool, name: str, size, photometric):
    result = tool.invoke({"path": str(SAMPLES / name)})
    assert result["format"] == "dicom" and result["modality"] in ("CR", "DX")
    if size:
        assert (result["width"], result["height"]) == size
    if photometric:
        assert result["photometric"] == photometric
    preview = np.asarray(Image.open(result["preview_png"]))
    assert preview.dtype == np.uint8 and preview.shape == (result["height"], result["width"])
    assert preview.min() == 0 and preview.max() == 255


def test_monochrome1_is_inverted_for_display(tool: LoadImageTool):
    inverted = np.asarray(Image.open(tool.invoke({"path": str(SAMPLES / "RG1_J2KI.dcm")})["preview_png"]))
    # Lungs are dark on a displayed radiograph: the central band is darker than the image border (body, labels).
    h, w = inverted.shape
    lungs = inverted[h // 3 : 2 * h // 3, w // 5 : 2 * w // 5].mean()
    assert lungs < inverted.mean() + 20


def test_png_loads(tool: LoadImageTool):
    result = tool.invoke({"path": str(SAMPLES / "nih_00000001_000.png")})
    assert result["format"] == "png" and result["width"] > 0


def test_truncated_dicom_is_a_clear_error(tool: LoadImageTool, tmp_path: Path):
    broken = tmp_path / "broken.dcm"
    broken.write_bytes((SAMPLES / "rsna_pneumonia_16d7f894.dcm").read_bytes()[:5000])
    with pytest.raises(ValueError, match="broken.dcm"):
        tool.invoke({"path": str(broken)})


def test_non_image_is_a_clear_error(tool: LoadImageTool, tmp_path: Path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image")
    with pytest.raises(ValueError, match="not a readable image"):
        tool.invoke({"path": str(text)})
    with pytest.raises(ValueError, match="no such file"):
        tool.invoke({"path": str(tmp_path / "missing.png")})


def test_a_huge_declared_size_is_refused_before_decoding(tool: LoadImageTool, tmp_path: Path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 40_000, 40_000, 8, 0, 0, 0, 0)  # 40000x40000 greyscale: 1.6 GB decoded
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\0" * 100))
        + chunk(b"IEND", b"")
    )
    with pytest.raises(ValueError, match="declared size"):
        tool.invoke({"path": str(bomb)})


@pytest.mark.parametrize("name", ["credentials", "id_rsa.png", "config.dcm"])
def test_a_file_that_is_not_an_image_is_named_but_never_quoted(tool: LoadImageTool, tmp_path: Path, name: str):
    """A case may name any path as its radiograph; the refusal names the file and the reason, never its contents
    (which would then reach the trace, the report and the workspace)."""
    secret = tmp_path / name
    secret.write_text("password=sentinel-0b7e41 token=sentinel-0b7e41\n" * 50)
    with pytest.raises(ValueError, match="not a readable") as refused:
        tool.invoke({"path": str(secret)})
    assert str(secret) in str(refused.value) and "sentinel-0b7e41" not in str(refused.value)

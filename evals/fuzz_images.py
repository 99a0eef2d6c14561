"""Fuzzing the image intake: seeded mutations of real radiographs through `load_image` and the imaging tools.

Each generated file is one mutation of a seed (DICOM, PNG or JPEG): DICOM tags set to odd values, pixel data cut
short or lengthened, a wrong transfer syntax, flipped or cut bytes, PNG chunks and JPEG markers corrupted,
decompression bombs, an oversized file, an empty one. Every file goes through `load_image`; one it accepts goes on
through lung segmentation and radiomics, as in a consult. Each call runs through the consult's tool runner with a
time limit. An outcome is:

- `accepted`: the tool returned a result;
- `rejected`: it failed with one of the clear errors the imaging code raises (`EXPECTED_ERRORS`);
- `crash`: it failed with any other exception (a decoder's own error leaking out, a bug);
- `hang`: it ran past the time limit.

The same seed writes the same files (their sha256 are in the report), so a run is reproducible.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import resource
import struct
import time
import warnings
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medconsult.config import Settings
from medconsult.imaging.io import MAX_FILE_BYTES, ImageLoadError, NotAChestRadiograph
from medconsult.imaging.segmentation import ImageTooSmall, NoLungsFound
from medconsult.records import ToolRecord
from medconsult.tools.base import ToolContext
from medconsult.tools.imaging.load_image import LoadImageTool
from medconsult.tools.imaging.radiomics_features import RadiomicsFeaturesTool
from medconsult.tools.imaging.segment_lungs import SegmentLungsTool
from medconsult.tools.runner import run_tool

# The imaging code's own errors, each naming the file and the reason (medconsult/imaging/io.py, segmentation.py).
EXPECTED_ERRORS = tuple(error.__name__ for error in (ImageLoadError, NotAChestRadiograph, ImageTooSmall, NoLungsFound))
SEEDS = {  # under the data folder
    "dicom": ("dicom_cxr_samples/RG1_derived_uncompressed_977x920.dcm", "dicom_cxr_samples/RG1_J2KI.dcm",
              "dicom_cxr_samples/rsna_pneumonia_16d7f894.dcm"),
    "png": ("cxr_hannover_covid/png/7afaaccc.png",),
}


@dataclass(frozen=True)
class Mutant:
    name: str
    mutation: str
    seed_file: str
    data: bytes | None  # None: written as a sparse file of `size` bytes (the oversized case)
    size: int = 0


Mutation = Callable[[random.Random, bytes], bytes]


# --- byte-level mutations (any format) --------------------------------------------------------------------------
def flip_bytes(rng: random.Random, data: bytes) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 64)):
        out[rng.randrange(len(out))] = rng.randrange(256)
    return bytes(out)


def flip_header(rng: random.Random, data: bytes) -> bytes:
    """Damage near the start, where the format's header and first tags are."""
    out = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        out[rng.randrange(min(len(out), 2048))] = rng.randrange(256)
    return bytes(out)


def truncate(rng: random.Random, data: bytes) -> bytes:
    return data[: rng.randrange(1, len(data))]


def lengthen(rng: random.Random, data: bytes) -> bytes:
    return data + rng.randbytes(rng.randint(1, 200_000))


def empty(rng: random.Random, data: bytes) -> bytes:
    return b""


def shuffle_blocks(rng: random.Random, data: bytes) -> bytes:
    size = max(1, len(data) // 16)
    blocks = [data[i : i + size] for i in range(0, len(data), size)]
    head, rest = blocks[:1], blocks[1:]
    rng.shuffle(rest)
    return b"".join(head + rest)


# --- DICOM ------------------------------------------------------------------------------------------------------
DICOM_TAGS = {  # (group, element) -> value representation
    (0x0028, 0x0010): "US", (0x0028, 0x0011): "US", (0x0028, 0x0100): "US", (0x0028, 0x0101): "US",
    (0x0028, 0x0002): "US", (0x0028, 0x0103): "US", (0x0028, 0x0004): "CS", (0x0028, 0x0008): "IS",
    (0x0028, 0x1050): "DS", (0x0028, 0x1051): "DS", (0x0028, 0x1052): "DS", (0x0028, 0x1053): "DS",
    (0x0028, 0x0030): "DS", (0x0018, 0x0015): "CS", (0x0008, 0x0060): "CS", (0x0018, 0x5101): "CS",
}
ODD_VALUES = {
    "US": [0, 1, 3, 7, 8, 12, 16, 17, 32, 64, 255, 65535],
    "CS": ["", "RGB", "MONOCHROME1", "PALETTE COLOR", "YBR_FULL", "HEAD", "CT", "LAT", "X" * 64, "\x00\xff"],
    "IS": ["0", "-1", "99999999", "abc", ""],
    "DS": ["0", "-1e308", "1e308", "nan", "inf", "abc", "", "1\\2\\3"],
}


def _dicom(data: bytes):
    import io

    import pydicom

    return pydicom.dcmread(io.BytesIO(data), force=True)


def _written(dataset, data: bytes) -> bytes:
    import io

    buffer = io.BytesIO()
    try:
        dataset.save_as(buffer, enforce_file_format=False)
    except Exception:  # noqa: BLE001 - a value pydicom will not write: keep the original bytes, flipped
        return flip_header(random.Random(len(data)), data)
    return buffer.getvalue()


def dicom_tag(rng: random.Random, data: bytes) -> bytes:
    """One to four image tags set to odd values (zero or huge sizes, wrong bit depths, colour, wrong body part)."""
    dataset = _dicom(data)
    for tag in rng.sample(sorted(DICOM_TAGS), rng.randint(1, 4)):
        vr = DICOM_TAGS[tag]
        try:
            dataset.add_new(tag, vr, rng.choice(ODD_VALUES[vr]))
        except Exception:  # noqa: BLE001 - pydicom refuses some values up front; the next tag still changes
            continue
    return _written(dataset, data)


def dicom_pixels(rng: random.Random, data: bytes) -> bytes:
    """Pixel data cut short, lengthened, emptied or replaced by noise of another length."""
    dataset = _dicom(data)
    if "PixelData" not in dataset:
        return truncate(rng, data)
    pixels = bytes(dataset.PixelData)
    choice = rng.randrange(4)
    if choice == 0:
        pixels = pixels[: rng.randrange(0, max(1, len(pixels)))]
    elif choice == 1:
        pixels += rng.randbytes(rng.randint(1, 100_000))
    elif choice == 2:
        pixels = b""
    else:
        pixels = rng.randbytes(rng.randint(1, len(pixels) + 1))
    dataset.PixelData = pixels
    return _written(dataset, data)


TRANSFER_SYNTAXES = ("1.2.840.10008.1.2", "1.2.840.10008.1.2.1", "1.2.840.10008.1.2.2", "1.2.840.10008.1.2.4.50",
                     "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.5", "1.2.840.10008.1.2.4.80", "1.2.3.4.5.6")


def dicom_transfer_syntax(rng: random.Random, data: bytes) -> bytes:
    """The file meta declares another transfer syntax than the pixel data is in."""
    dataset = _dicom(data)
    meta = getattr(dataset, "file_meta", None)
    if meta is None:
        return flip_header(rng, data)
    meta.TransferSyntaxUID = rng.choice(TRANSFER_SYNTAXES)
    return _written(dataset, data)


# --- PNG and JPEG -------------------------------------------------------------------------------------------------
def _png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    chunks, position = [], 8
    while position + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[position : position + 8])
        chunks.append((kind, data[position + 8 : position + 8 + length]))
        position += 12 + length
    return chunks


def _png(chunks: list[tuple[bytes, bytes]], fix_crc: bool = True) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, body in chunks:
        crc = zlib.crc32(kind + body) if fix_crc else 0
        out.append(struct.pack(">I4s", len(body), kind) + body + struct.pack(">I", crc & 0xFFFFFFFF))
    return b"".join(out)


def png_chunks(rng: random.Random, data: bytes) -> bytes:
    """A PNG with a corrupted chunk: its header's size, bit depth or colour type, or its compressed data."""
    if not data.startswith(b"\x89PNG"):
        return flip_header(rng, data)
    chunks = _png_chunks(data)
    index = rng.randrange(len(chunks))
    kind, body = chunks[index]
    if kind == b"IHDR":
        width, height, depth, colour = struct.unpack(">IIBB", body[:10])
        fields = [rng.choice([0, 1, width, 2**31 - 1, 70000]), rng.choice([0, 1, height, 2**31 - 1, 70000]),
                  rng.choice([1, 2, 4, 8, 16, 3, 255]), rng.choice([0, 2, 3, 4, 6, 7])]
        body = struct.pack(">IIBB", *fields) + body[10:]
    else:
        body = flip_bytes(rng, body) if body else rng.randbytes(16)
    chunks[index] = (kind, body)
    return _png(chunks, fix_crc=rng.random() < 0.7)


def png_bomb(rng: random.Random, data: bytes) -> bytes:
    """A small file that decodes to a huge image: zeros compress about a thousandfold."""
    side = rng.choice([9000, 12000, 20000, 40000])
    row = b"\x00" + bytes(side)
    compressor = zlib.compressobj(9)
    compressed = b"".join(compressor.compress(row) for _ in range(min(side, 12000))) + compressor.flush()
    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)
    return _png([(b"IHDR", header), (b"IDAT", compressed), (b"IEND", b"")])


def jpeg_markers(rng: random.Random, data: bytes) -> bytes:
    """A JPEG-coded image (a DICOM's frame or a re-encoded PNG) with its markers or segment lengths damaged."""
    out = bytearray(_as_jpeg(data))
    markers = [i for i in range(len(out) - 4) if out[i] == 0xFF and out[i + 1] not in (0x00, 0xFF)]
    for position in rng.sample(markers, min(len(markers), rng.randint(1, 6))):
        out[position + 1 + rng.randint(0, 3)] = rng.randrange(256)  # the marker or its segment length
    return bytes(out)


def _as_jpeg(data: bytes) -> bytes:
    import io

    from PIL import Image

    try:
        image = Image.open(io.BytesIO(data)).convert("L")
    except Exception:  # noqa: BLE001 - a seed PIL cannot read (DICOM): a small synthetic radiograph-like image
        image = Image.radial_gradient("L").resize((512, 512))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=85)
    return buffer.getvalue()


MUTATIONS: dict[str, tuple[tuple[str, ...], Mutation]] = {
    "flip_bytes": (("dicom", "png"), flip_bytes),
    "flip_header": (("dicom", "png"), flip_header),
    "truncate": (("dicom", "png"), truncate),
    "lengthen": (("dicom", "png"), lengthen),
    "shuffle_blocks": (("dicom", "png"), shuffle_blocks),
    "empty": (("png",), empty),
    "dicom_tag": (("dicom",), dicom_tag),
    "dicom_pixels": (("dicom",), dicom_pixels),
    "dicom_transfer_syntax": (("dicom",), dicom_transfer_syntax),
    "png_chunks": (("png",), png_chunks),
    "png_bomb": (("png",), png_bomb),
    "jpeg_markers": (("png",), jpeg_markers),
}
SUFFIX = {"dicom": ".dcm", "png": ".png", "jpeg_markers": ".jpg"}


def generate(data_dir: Path, count: int, seed: int) -> list[Mutant]:
    """`count` mutants, the same ones for the same seed; the last is an oversized (sparse) file."""
    rng = random.Random(seed)
    originals = {kind: [(name, (data_dir / name).read_bytes()) for name in names] for kind, names in SEEDS.items()}
    names = sorted(MUTATIONS)
    mutants = []
    for index in range(max(0, count - 1)):
        mutation = names[index % len(names)]
        kinds, mutate = MUTATIONS[mutation]
        kind = kinds[index // len(names) % len(kinds)]
        seed_file, original = rng.choice(originals[kind])
        suffix = SUFFIX.get(mutation, SUFFIX[kind])
        with warnings.catch_warnings():  # pydicom warns about each odd value it is asked to write
            warnings.simplefilter("ignore")
            mutated = mutate(rng, original)
        mutants.append(Mutant(f"{index:04d}-{mutation}{suffix}", mutation, seed_file, mutated))
    if count:
        mutants.append(Mutant(f"{count - 1:04d}-oversized.dcm", "oversized", "", None, MAX_FILE_BYTES + 1))
    return mutants


def write(mutant: Mutant, folder: Path) -> Path:
    path = folder / mutant.name
    if mutant.data is None:
        with open(path, "wb") as handle:  # sparse: no disk is used for the hole
            handle.truncate(mutant.size)
    else:
        path.write_bytes(mutant.data)
    return path


def outcome(record: ToolRecord) -> str:
    if record.ok:
        return "accepted"
    error = record.error or ""
    if error.startswith("timed out"):
        return "hang"
    return "rejected" if error.split(":", 1)[0] in EXPECTED_ERRORS else "crash"


async def _through_the_tools(path: Path, context: ToolContext, timeout_s: float) -> list[ToolRecord]:
    """load_image, then for an accepted image segment_lungs and radiomics, as a consult would."""
    tools = {cls: cls(context=context) for cls in (LoadImageTool, SegmentLungsTool, RadiomicsFeaturesTool)}
    loaded = await run_tool(tools[LoadImageTool], {"path": str(path)}, timeout_s=timeout_s)
    records = [loaded]
    if loaded.ok:
        segmented = await run_tool(tools[SegmentLungsTool], {"image": str(path)}, timeout_s=timeout_s)
        records.append(segmented)
        if segmented.ok:
            masks = {"right_mask": segmented.result["right_mask_png"], "left_mask": segmented.result["left_mask_png"]}
            records.append(await run_tool(tools[RadiomicsFeaturesTool], {"image": str(path), **masks},
                                          timeout_s=timeout_s))
    return records


def run_fuzz(data_dir: Path, out: Path, *, count: int = 1000, seed: int = 7, timeout_s: float = 30.0,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Generate, run and report; writes out/fuzz.json and keeps the files that crashed or hung under out/kept."""
    started = time.perf_counter()
    files = out / "files"
    files.mkdir(parents=True, exist_ok=True)
    context = ToolContext(Settings(data_dir=data_dir), work_dir=out / "work")
    counts: Counter[str] = Counter()
    by_mutation: dict[str, Counter[str]] = {}
    problems, digests = [], hashlib.sha256()
    for number, mutant in enumerate(generate(data_dir, count, seed), start=1):
        path = write(mutant, files)
        digests.update(mutant.name.encode() + hashlib.sha256(mutant.data or b"").digest())
        with warnings.catch_warnings():  # decoders warn about every damaged file; the outcome says it once
            warnings.simplefilter("ignore")
            records = asyncio.run(_through_the_tools(path, context, timeout_s))
        worst = _worst([outcome(r) for r in records])
        counts[worst] += 1
        by_mutation.setdefault(mutant.mutation, Counter())[worst] += 1
        if worst in ("crash", "hang"):
            failing = next(r for r in records if outcome(r) == worst)
            problems.append({"file": mutant.name, "mutation": mutant.mutation, "seed": mutant.seed_file,
                             "tool": failing.tool, "outcome": worst, "error": (failing.error or "")[:300]})
            (out / "kept").mkdir(exist_ok=True)
            if mutant.data is not None:
                (out / "kept" / mutant.name).write_bytes(mutant.data)
        path.unlink()
        if number % 100 == 0:
            log(f"{number}/{count} files: {dict(counts)}")
    report = {
        "files": count, "seed": seed, "timeout_s": timeout_s, "outcomes": dict(counts),
        "crashes": counts["crash"], "hangs": counts["hang"],
        "by_mutation": {m: dict(c) for m, c in sorted(by_mutation.items())},
        "problems": problems, "files_sha256": digests.hexdigest(),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out / "fuzz.json").write_text(json.dumps(report, indent=2))
    return report


def _worst(outcomes: list[str]) -> str:
    order = ("hang", "crash", "rejected", "accepted")
    return min(outcomes, key=order.index)

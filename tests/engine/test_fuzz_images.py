"""Fuzzing the image door (issue 21): a few hundred damaged, mislabelled and hostile files, each
either accepted or refused with one ImpastoError line; no other exception type, no traceback
text and no hang. Deterministic: the same seed makes the same files every run."""

from __future__ import annotations

import io
import random
import threading

import numpy as np
from PIL import Image

from impasto.errors import ImpastoError
from impasto.job import StyleJob, check_job

SEED = 21
PER_FILE_SECONDS = 5.0
STYLE = Image.new("RGB", (32, 32), "gray")  # in memory: only the fuzzed content is read

# PostScript is a program: an EPS/PS file must never reach an interpreter (it would loop for ever).
HOSTILE_TEXT = {
    "loop.eps": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 200 200\n{ } loop\n%%EOF\n",
    "loop.ps": b"%!PS\n{ } loop\nshowpage\n",
    "loop_eps.jpg": b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 200 200\n{ } loop\n",
    "doc.pdf": b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n",
    # A binary EPS header (DOS EPS magic) in front of a PostScript loop.
    "dos.eps": b"\xc5\xd0\xd3\xc6" + bytes(26) + b"%!PS-Adobe-3.0 EPSF-3.0\n{ } loop\n",
    "empty_magic.png": b"\x89PNG\r\n\x1a\n",
    "jpeg_magic.jpg": b"\xff\xd8\xff\xe0",
    "text.png": b"not a picture at all\n" * 20,
}


def _save(img: Image.Image, **kw) -> bytes:
    # Copies: Pillow keeps a save's options on the images it wrote, for the next save.
    kw["append_images"] = [frame.copy() for frame in kw.get("append_images", ())]
    buf = io.BytesIO()
    img.copy().save(buf, **kw)
    return buf.getvalue()


def _seed_files() -> dict[str, bytes]:
    """One small picture in every format Pillow can write here (in the first mode it accepts),
    and the variants of the formats impasto opens that exercise their less common paths."""
    rng = np.random.default_rng(SEED)
    rgb = Image.fromarray(rng.integers(0, 256, (24, 40, 3), dtype=np.uint8), "RGB")
    Image.init()  # every plug-in registered, not only the common ones
    extensions = {f: e for e, f in sorted(Image.registered_extensions().items(), reverse=True)}
    extensions |= {"JPEG": ".jpg", "PNG": ".png"}
    out = {}
    for fmt in sorted(Image.SAVE):
        for mode in ("RGB", "RGBA", "L", "P", "1", "F", "I;16"):
            try:
                data = _save(rgb.convert(mode), format=fmt)
            except Exception:  # noqa: BLE001 - this format takes another mode, or no writer here
                continue
            if data:
                out[f"seed_{fmt.lower()}{extensions.get(fmt, '')}"] = data
                break
    turned = rgb.rotate(90, expand=True).resize(rgb.size)
    out |= {
        "exif.jpg": _save(rgb, format="JPEG", exif=_exif()),
        "progressive.jpg": _save(rgb, format="JPEG", progressive=True),
        "cmyk.jpg": _save(rgb.convert("CMYK"), format="JPEG"),
        "mpo.jpg": _save(rgb, format="MPO", save_all=True, append_images=[turned]),
        "palette.png": _save(rgb.convert("P"), format="PNG", transparency=3),
        "gray16.png": _save(rgb.convert("I;16"), format="PNG"),
        "la.png": _save(rgb.convert("LA"), format="PNG"),
        "anim.png": _save(rgb, format="PNG", save_all=True, append_images=[turned]),
        "exif.tif": _save(rgb, format="TIFF", exif=_exif()),
        "lzw.tif": _save(rgb, format="TIFF", compression="tiff_lzw"),
        "jpeg.tif": _save(rgb, format="TIFF", compression="jpeg"),
        "float.tif": _save(rgb.convert("F"), format="TIFF"),
        "cmyk.tif": _save(rgb.convert("CMYK"), format="TIFF"),
        "pages.tif": _save(rgb, format="TIFF", save_all=True, append_images=[turned]),
        "rgba.bmp": _save(rgb.convert("RGBA"), format="BMP"),
        "anim.gif": _save(rgb.convert("P"), format="GIF", save_all=True,
                          append_images=[turned.convert("P")], transparency=0),
        "lossless.webp": _save(rgb, format="WEBP", lossless=True, exif=_exif()),
        "anim.webp": _save(rgb.convert("RGBA"), format="WEBP", save_all=True,
                           append_images=[turned.convert("RGBA")]),
    }  # fmt: skip
    return out


def _exif() -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees
    exif[0x010E] = "description"
    return exif


def _mutants(seeds: dict[str, bytes], rng: random.Random) -> dict[str, bytes]:
    """Truncated, bit-flipped, byte-overwritten, header-swapped and misnamed variants."""
    out = dict(seeds) | dict(HOSTILE_TEXT)
    names = sorted(seeds)
    for name in names:
        data, stem = seeds[name], name.rsplit(".", 1)[0]
        ext = name[len(stem) :]
        for cut in (1, 8, len(data) // 4, len(data) // 2, len(data) - 1):
            out[f"{stem}_cut{cut}{ext}"] = data[:cut]
        for k in range(5):
            flipped = bytearray(data)
            for _ in range(rng.randint(1, 8)):
                # Headers hold the sizes and offsets worth breaking: flip mostly near the start.
                at = rng.randrange(min(len(data), 64) if k < 3 else len(data))
                flipped[at] ^= 1 << rng.randrange(8)
            out[f"{stem}_flip{k}{ext}"] = bytes(flipped)
        smashed = bytearray(data)
        at = rng.randrange(len(data))
        smashed[at : at + 4] = b"\xff\xff\xff\x7f"  # a huge size or offset
        out[f"{stem}_smash{ext}"] = bytes(smashed)
        other = seeds[rng.choice(names)]
        out[f"{stem}_swap{ext}"] = other[:16] + data[16:]  # another format's magic
        out[f"{stem}_as.jpg"] = data  # the wrong extension
        out[f"{stem}_junk{ext}"] = data[:16] + rng.randbytes(200)
    return out


def _outcome(path) -> tuple[str, str]:
    """("ok", ""), ("refused", message) or ("bug", "Type: message")."""
    try:
        check_job(StyleJob(content=str(path), styles=[STYLE], size=64))
    except ImpastoError as exc:
        return "refused", str(exc)
    except BaseException as exc:  # noqa: BLE001 - what the test is looking for
        return "bug", f"{type(exc).__name__}: {exc}"
    return "ok", ""


def _with_time_limit(path) -> tuple[str, str]:
    result: list = []
    worker = threading.Thread(target=lambda: result.append(_outcome(path)), daemon=True)
    worker.start()
    worker.join(PER_FILE_SECONDS)
    return result[0] if result else ("hang", f"no answer in {PER_FILE_SECONDS:g} s")


def test_every_mutated_image_is_accepted_or_refused_with_one_line(tmp_path):
    seeds = _seed_files()
    # Every format impasto opens is among the seeds (the others are refused by the allow-list).
    assert {"seed_png.png", "seed_jpeg.jpg", "seed_bmp.bmp", "seed_gif.gif"} <= set(seeds)
    files = _mutants(seeds, random.Random(SEED))
    assert len(files) >= 250
    problems, outcomes = [], {}
    for name, data in sorted(files.items()):
        path = tmp_path / name
        path.write_bytes(data)
        kind, message = _with_time_limit(path)
        outcomes[name] = kind
        if kind in ("bug", "hang"):
            problems.append(f"{name}: {kind}: {message}")
        elif kind == "refused" and ("\n" in message or "Traceback" in message):
            problems.append(f"{name}: not one line: {message!r}")
        elif kind == "refused" and name not in message:
            problems.append(f"{name}: the message does not name the file: {message!r}")
    assert not problems, "\n".join(problems)
    # Positive controls beside the refusals: the intact seeds of the allowed formats are painted.
    for name in ("seed_png.png", "seed_jpeg.jpg", "seed_bmp.bmp", "seed_tiff.tif", "exif.jpg"):
        assert outcomes[name] == "ok", name
    # And the hostile PostScript is refused, whatever its name says.
    for name in HOSTILE_TEXT:
        assert outcomes[name] == "refused", name


def test_a_damaged_exif_tag_the_engine_does_not_read_does_not_refuse_the_photo(tmp_path):
    # Found by the fuzzing above: one bit flipped in a tag's number (ImageDescription, text, to
    # a number-typed tag) made Pillow's exif_transpose fail with struct.error while rewriting
    # the EXIF block; the picture itself is fine, and its orientation is still applied.
    good = _seed_files()["exif.jpg"]
    assert good.count(b"\x01\x0e\x00\x02") == 1  # the tag 0x010E, type ASCII
    (tmp_path / "good.jpg").write_bytes(good)
    (tmp_path / "bad_tag.jpg").write_bytes(good.replace(b"\x01\x0e\x00\x02", b"\x01\x4e\x00\x02"))
    for name in ("good.jpg", "bad_tag.jpg"):
        checked = check_job(StyleJob(content=str(tmp_path / name), styles=[STYLE], size=64))
        assert checked.content.rgb.size == (24, 40), name  # 40x24, turned upright

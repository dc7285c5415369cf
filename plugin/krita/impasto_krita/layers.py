"""Pixels in and out of Krita: the region to stylise, the layer as a PNG for the engine, and the
engine's PNG back as a new layer.

The engine works on 8-bit sRGB. An 8-bit RGBA layer is handed over as it is; any other colour
space (16-bit, float, CMYK, greyscale, Lab) is converted to 8-bit sRGB on a detached copy, and the
result layer is converted back to the document's colour space, so the document is never changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from PyQt5.QtCore import Qt
from PyQt5.QtGui import QImage

from . import impasto_client as client

log = logging.getLogger(__name__)

ENGINE_SPACE = ("RGBA", "U8", "sRGB-elle-V2-srgbtrc.icc")
MASK_TYPES = (
    "transparencymask",
    "filtermask",
    "transformmask",
    "selectionmask",
    "colorizemask",
)


@dataclass
class Region:
    """The rectangle to stylise (document pixels), with what the selection adds: mask, its values
    over the rectangle for the engine ("mask" mode), and cut, its values over the rectangle for
    the result's alpha (both modes). One byte per pixel, 255 inside."""

    x: int
    y: int
    width: int
    height: int
    mask: bytes | None = None
    cut: bytes | None = None

    @property
    def long_side(self) -> int:
        return max(self.width, self.height)


def source_layer(doc):
    """The layer to stylise: the active node, or the layer a selected mask belongs to."""
    node = doc.activeNode()
    if node is None:
        raise client.EngineError("select the layer to stylise in the Layers docker first")
    if node.type() in MASK_TYPES and node.parentNode() is not None:
        node = node.parentNode()
    return node


def has_selection(doc) -> bool:
    selection = doc.selection()
    return selection is not None and selection.width() > 0 and selection.height() > 0


def work_region(doc, mode: str = client.DEFAULT_SELECTION_MODE) -> Region:
    """The whole canvas, with the selection as the engine's mask when there is one; or, in
    "crop" mode, the selection's bounds (inside the canvas). Either way the result is cut to the
    selection's shape."""
    width, height = doc.width(), doc.height()
    if not has_selection(doc):
        return Region(0, 0, width, height)
    selection = doc.selection()
    if mode == "mask":
        values = client.selection_mask(selection.pixelData(0, 0, width, height), width, height)
        # Cut too: deep features spill a little style past the mask's edge, and outside the
        # selection the user must see the layer below exactly.
        return Region(0, 0, width, height, mask=values, cut=values)
    x0, y0 = max(0, selection.x()), max(0, selection.y())
    x1 = min(width, selection.x() + selection.width())
    y1 = min(height, selection.y() + selection.height())
    if x1 <= x0 or y1 <= y0:
        raise client.EngineError("the selection does not cover any of the picture")
    w, h = x1 - x0, y1 - y0
    cut = client.selection_mask(selection.pixelData(x0, y0, w, h), w, h)
    return Region(x0, y0, w, h, cut=cut)


def selection_box(doc) -> tuple | None:
    """The size of the selection's bounds inside the canvas ("crop" mode's region), or None."""
    if not has_selection(doc):
        return None
    region = work_region(doc, "crop")
    return region.width, region.height


def _is_engine_space(node) -> bool:
    return (node.colorModel(), node.colorDepth()) == ENGINE_SPACE[:2]


def read_region(node, region: Region) -> bytes:
    """The region's pixels as 8-bit BGRA (Krita's byte order for RGBA/U8), converted if needed."""
    source = node
    if not _is_engine_space(node):
        source = node.duplicate()  # detached: converting it leaves the document alone
        if source is None or not source.setColorSpace(*ENGINE_SPACE):
            raise client.EngineError(
                f"cannot convert this {node.colorModel()}/{node.colorDepth()} layer to 8-bit "
                "RGB for the engine: convert the image to RGB/Alpha 8-bit (Image > Convert "
                "Image Color Space) and try again"
            )
    data = bytes(source.pixelData(region.x, region.y, region.width, region.height))
    if len(data) != region.width * region.height * 4:
        raise client.EngineError("Krita returned no pixels for this layer")
    return data


def export_region(node, region: Region, path: str) -> None:
    """Write the layer's region to a PNG the engine can read (alpha kept: where the layer is
    transparent, or does not reach, so is the engine's result)."""
    data = read_region(node, region)
    image = QImage(data, region.width, region.height, region.width * 4, QImage.Format_ARGB32)
    if not image.copy().save(path, "PNG"):
        raise client.EngineError(f"cannot write the layer to {path}")


def export_mask(region: Region, path: str) -> str | None:
    """Write the selection mask the engine gets, if the region has one; its path or None."""
    if region.mask is None:
        return None
    client.write_mask_png(path, region.mask, region.width, region.height)
    return path


def load_result(path: str, region: Region) -> bytes:
    """The engine's PNG as BGRA bytes of exactly the region's size, cut to the selection."""
    image = QImage(path)
    if image.isNull():
        raise client.EngineError(f"cannot read the engine's result {path}")
    image = image.convertToFormat(QImage.Format_ARGB32)
    if (image.width(), image.height()) != (region.width, region.height):
        # The user chose another output size: the layer still has to fit the region.
        image = image.scaled(
            region.width, region.height, Qt.IgnoreAspectRatio, Qt.SmoothTransformation
        )
    ptr = image.constBits()
    ptr.setsize(image.sizeInBytes())
    stride = image.bytesPerLine()
    row = region.width * 4
    data = b"".join(bytes(ptr[y * stride : y * stride + row]) for y in range(region.height))
    if region.cut is not None:
        data = apply_mask(data, region.cut)
    return data


def apply_mask(bgra: bytes, mask: bytes) -> bytes:
    """Multiply the alpha of BGRA pixels by a selection mask (0-255), so a shaped selection
    gives a shaped result."""
    out = bytearray(bgra)
    alpha = out[3::4]
    # No zip(strict=): Krita builds bundle Pythons older than 3.10. Lengths match by design.
    out[3::4] = bytes((a * m + 127) // 255 for a, m in zip(alpha, mask))  # noqa: B905
    return bytes(out)


def add_result_layer(doc, source, region: Region, bgra: bytes, name: str):
    """A new paint layer right above source, canvas-sized, holding bgra at the region."""
    layer = doc.createNode(name, "paintlayer")
    converted = not _is_engine_space(layer)
    if converted and not layer.setColorSpace(*ENGINE_SPACE):
        raise client.EngineError("cannot create an 8-bit layer for the result")
    layer.setPixelData(bgra, region.x, region.y, region.width, region.height)
    parent = source.parentNode() or doc.rootNode()
    if not parent.addChildNode(layer, source):
        raise client.EngineError("Krita refused to add the result layer")
    if converted:
        # Back to the document's own colour space, so the new layer blends like the others.
        layer.setColorSpace(doc.colorModel(), doc.colorDepth(), doc.colorProfile())
    doc.setActiveNode(layer)
    doc.refreshProjection()
    return layer

"""Read what a test needs from a Krita .kra file without Krita: the layer list from maindoc.xml
and a paint layer's pixels from its tiles (Krita's "VERSION 2" tile format, LZF-compressed,
each tile's channels stored one after another)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
import zipfile
from dataclasses import dataclass

import numpy as np

NS = "{http://www.calligra.org/DTD/krita}"


@dataclass
class KraLayer:
    name: str
    nodetype: str
    filename: str
    x: int
    y: int
    colorspace: str


@dataclass
class KraDoc:
    path: str
    image_name: str
    width: int
    height: int
    colorspace: str
    layers: list  # top-level layers, top of the stack first (maindoc.xml order)

    def layer(self, name: str) -> KraLayer:
        for layer in self.layers:
            if layer.name == name:
                return layer
        raise KeyError(f"no layer {name!r} in {self.path}; layers: {[x.name for x in self.layers]}")

    def pixels(self, layer: KraLayer) -> np.ndarray:
        """The layer's pixels over the whole canvas: RGBA (or grey + alpha), uint8 or uint16 as
        stored."""
        with zipfile.ZipFile(self.path) as z:
            base = f"{self.image_name}/layers/{layer.filename}"
            data = z.read(base)
            names = z.namelist()
            default = z.read(base + ".defaultpixel") if base + ".defaultpixel" in names else None
        return _decode_tiles(
            data, default, layer.x, layer.y, self.width, self.height, layer.colorspace
        )


def read_kra(path) -> KraDoc:
    with zipfile.ZipFile(path) as z:
        root = ET.fromstring(z.read("maindoc.xml"))
    image = root.find(f"{NS}IMAGE")
    layers = []
    for el in image.find(f"{NS}layers"):
        layers.append(
            KraLayer(
                name=el.get("name"),
                nodetype=el.get("nodetype"),
                filename=el.get("filename"),
                x=int(el.get("x", 0)),
                y=int(el.get("y", 0)),
                colorspace=el.get("colorspacename", ""),
            )
        )
    return KraDoc(
        path=str(path),
        image_name=image.get("name"),
        width=int(image.get("width")),
        height=int(image.get("height")),
        colorspace=image.get("colorspacename"),
        layers=layers,
    )


def lzf_decompress(data: bytes, size: int) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        ctrl = data[i]
        i += 1
        if ctrl < 32:  # a literal run of ctrl + 1 bytes
            out += data[i : i + ctrl + 1]
            i += ctrl + 1
            continue
        length = ctrl >> 5  # a back reference
        if length == 7:
            length += data[i]
            i += 1
        ref = len(out) - ((ctrl & 0x1F) << 8) - data[i] - 1
        i += 1
        for k in range(length + 2):
            out.append(out[ref + k])
    if len(out) != size:
        raise ValueError(f"LZF tile decompressed to {len(out)} bytes, expected {size}")
    return bytes(out)


def _decode_tiles(
    data: bytes, default, ox: int, oy: int, width: int, height: int, colorspace: str
) -> np.ndarray:
    header = {}
    pos = 0
    for _ in range(5):
        end = data.index(b"\n", pos)
        key, value = data[pos:end].decode().split(" ", 1)
        header[key] = value
        pos = end + 1
    if header["VERSION"] != "2":
        raise ValueError(f"tile format version {header['VERSION']} is not supported")
    tw, th = int(header["TILEWIDTH"]), int(header["TILEHEIGHT"])
    pixel_size = int(header["PIXELSIZE"])
    channel_bytes = 2 if colorspace.endswith("16") else 1  # "RGBA16", "GRAYAU16"
    dtype = np.uint16 if channel_bytes == 2 else np.uint8
    channels = pixel_size // channel_bytes
    canvas = np.zeros((height, width, pixel_size), dtype=np.uint8)
    if default and len(default) == pixel_size:
        canvas[:, :] = np.frombuffer(default, dtype=np.uint8)
    for _ in range(int(header["DATA"])):
        end = data.index(b"\n", pos)
        x, y, codec, size = data[pos:end].decode().split(",")
        pos = end + 1
        blob = data[pos : pos + int(size)]
        pos += int(size)
        if codec != "LZF":
            raise ValueError(f"unknown tile codec {codec}")
        raw_size = tw * th * pixel_size
        raw = lzf_decompress(blob[1:], raw_size) if blob[0] == 1 else blob[1:]
        # Stored planar (every pixel's byte 0, then byte 1, ...): back to interleaved pixels.
        tile = np.frombuffer(raw, dtype=np.uint8).reshape(pixel_size, th, tw).transpose(1, 2, 0)
        x0, y0 = int(x) + ox, int(y) + oy
        cx0, cy0 = max(0, x0), max(0, y0)
        cx1, cy1 = min(width, x0 + tw), min(height, y0 + th)
        if cx1 > cx0 and cy1 > cy0:
            canvas[cy0:cy1, cx0:cx1] = tile[cy0 - y0 : cy1 - y0, cx0 - x0 : cx1 - x0]
    pixels = canvas.view(dtype).reshape(height, width, channels)
    if colorspace.startswith("RGBA"):
        return pixels[:, :, [2, 1, 0, 3]]  # Krita stores BGRA
    return pixels

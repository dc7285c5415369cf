"""Run inside GIMP 3 by `gimp-console-3.0 --batch-interpreter=python-fu-eval -b
"SPEC='...'; exec(open('gimp3_batch.py').read())"` (test_gimp3.py).

Calls the installed plug-in's procedure through GIMP's PDB, the way another script or GIMP's
own menu would, on images opened from the test image; exports each new layer to a PNG (through
a scratch 8-bit image) and writes a JSON report. GIMP's exit code says nothing about this, so
the report is the outcome. Scenarios run with recorded=True have the recording stand-in
(tests/plugin/recording_engine.py) play the engine: the plug-in's settings file names it for
that scenario only.
"""

import json
import traceback

from gi.repository import Gimp, Gio

PROCEDURE = "python-fu-impasto-stylize"


def _file(path):
    return Gio.File.new_for_path(path)


def _export_layer(layer, width, height, path):
    scratch = Gimp.Image.new(width, height, Gimp.ImageBaseType.RGB)
    copy = Gimp.Layer.new_from_drawable(layer, scratch)
    scratch.insert_layer(copy, None, 0)
    _, x, y = layer.get_offsets()
    copy.set_offsets(x, y)
    scratch.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
    Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, scratch, _file(path))
    scratch.delete()


def _scenario(spec, name, style, prepare=None, mode=None, recorded=False, steps=None):
    """prepare(image) may return the layer to stylise (else the image's only layer)."""
    entry = {}
    image = Gimp.file_load(Gimp.RunMode.NONINTERACTIVE, _file(spec["content"]))
    source = image.get_layers()[0]
    if prepare is not None:
        source = prepare(image) or source
    entry["precision"] = str(image.get_precision())
    procedure = Gimp.get_pdb().lookup_procedure(PROCEDURE)
    if procedure is None:
        raise RuntimeError(f"GIMP does not know {PROCEDURE}: the plug-in did not register")
    config = procedure.create_config()
    config.set_property("run-mode", Gimp.RunMode.NONINTERACTIVE)
    config.set_property("image", image)
    config.set_core_object_array("drawables", [source])
    config.set_property("style", _file(style))
    config.set_property("steps", steps or spec["steps"])
    config.set_property("seed", spec["seed"])
    if mode is not None:
        config.set_property("selection-mode", mode)
    if recorded:
        with _engine_command([*spec["recorder"], f"{spec['out_dir']}/{name}"], spec):
            result = procedure.run(config)
    else:
        result = procedure.run(config)
    status = result.index(0)
    entry["status"] = status.value_nick
    if status != Gimp.PDBStatusType.SUCCESS:
        entry["message"] = Gimp.PDB.get_last_error(Gimp.get_pdb())
    layers = image.get_layers()
    entry["layers"] = [layer.get_name() for layer in layers]
    if len(layers) > 1:
        top = layers[0]
        _, x, y = top.get_offsets()
        entry["new_layer"] = {"offset": [x, y], "size": [top.get_width(), top.get_height()]}
        entry["png"] = f"{spec['out_dir']}/{name}.png"
        _export_layer(top, image.get_width(), image.get_height(), entry["png"])
    image.delete()
    return entry


class _engine_command:
    """Name another engine command in the installed plug-in's settings, for one block."""

    def __init__(self, command, spec):
        self.path = f"{spec['plugin_dir']}/impasto_settings.json"
        self.command = command

    def __enter__(self):
        with open(self.path, encoding="utf-8") as fh:
            self.saved = fh.read()
        settings = json.loads(self.saved)
        settings["command"] = self.command
        with open(self.path, "w", encoding="utf-8") as fh:
            json.dump(settings, fh)

    def __exit__(self, *exc):
        with open(self.path, "w", encoding="utf-8") as fh:
            fh.write(self.saved)


def _main(spec):
    report = {}

    def run(name, *args, **kw):
        try:
            report[name] = _scenario(spec, name, *args, **kw)
        except Exception:
            report[name] = {"trace": traceback.format_exc()}

    def select_shape(image):
        x, y, w, h = spec["selection"]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
        hx, hy, hw, hh = spec["hole"]
        image.select_rectangle(Gimp.ChannelOps.SUBTRACT, hx, hy, hw, hh)

    def select_feathered(image):
        x, y, w, h = spec["selection"]
        image.select_rectangle(Gimp.ChannelOps.REPLACE, x, y, w, h)
        Gimp.Selection.feather(image, spec["feather"])

    def patch_layer_feathered(image):
        # A white layer smaller than the canvas, at an offset, under a soft selection.
        px, py, pw, ph = spec["patch"]
        layer = Gimp.Layer.new(
            image, "Patch", pw, ph, Gimp.ImageType.RGBA_IMAGE, 100.0, Gimp.LayerMode.NORMAL
        )
        image.insert_layer(layer, None, 0)
        layer.set_offsets(px, py)
        layer.fill(Gimp.FillType.WHITE)
        select_feathered(image)
        return layer

    def to_16_bit(image):
        image.convert_precision(Gimp.Precision.U16_NON_LINEAR)

    run("plain", spec["style"])
    run("selection", spec["style"], select_shape, mode="crop")
    run("feathered", spec["style"], select_feathered, recorded=True)
    run("patch_layer", spec["style"], patch_layer_feathered, recorded=True)
    run("feathered_real", spec["style"], select_feathered, steps=spec["masked_steps"])
    run("sixteen_bit", spec["style"], to_16_bit)
    run("engine_error", spec["bad_style"])
    with open(spec["report"], "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)


_main(json.loads(SPEC))  # noqa: F821 - SPEC is defined by the -b code that runs this file

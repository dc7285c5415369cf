#!/usr/bin/env python3
"""impasto for GIMP 3: Filters > Artistic > "Stylise with impasto..." paints the active layer
(or the part of it inside the selection) in the style of an artwork, as a new layer above it.
A selection becomes the engine's mask (its soft edges too), or, if asked, only its bounding box is
painted; either way the result is cut to the selection.

GIMP runs this file as a program (plug-ins/impasto/impasto.py). It never imports impasto, whose
TensorFlow GIMP's Python does not have: it exports the region to a PNG, runs the `impasto`
command recorded in impasto_settings.json at install time through the shared client copied
next to it (impasto_client.py), shows the engine's progress in GIMP's progress bar, and loads
the result back as a layer. GIMP converts between the image's own mode and precision and the
engine's 8-bit RGB on the way out and back in.
"""

import os
import shutil
import sys

import gi

gi.require_version("Gimp", "3.0")
gi.require_version("Gegl", "0.4")
from gi.repository import Gegl, Gimp, Gio, GLib, GObject  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)  # impasto_client.py sits next to this file
import impasto_client as client  # noqa: E402

PROCEDURE = "python-fu-impasto-stylize"
PRESERVE = (
    ("preset", "As the preset says"),
    ("none", "No: take the painting's colours"),
    ("luminance", "Luminance: keep the photo's colours"),
    ("histogram", "Histogram: match the photo's colour spread"),
)


def _presets(engine):
    """The engine's presets for the dropdown; a broken engine still leaves "classic"."""
    try:
        presets = [p for p in client.list_presets(engine) if not p.get("error")]
    except client.EngineError:
        presets = []
    return presets or [{"name": client.DEFAULT_PRESET, "description": ""}]


def _engine():
    return client.read_engine_command(HERE)


class ImpastoPlugIn(Gimp.PlugIn):
    def do_query_procedures(self):
        return [PROCEDURE]

    def do_set_i18n(self, name):
        return False

    def do_create_procedure(self, name):
        procedure = Gimp.ImageProcedure.new(self, name, Gimp.PDBProcType.PLUGIN, stylize, None)
        procedure.set_image_types("RGB*, GRAY*")
        procedure.set_sensitivity_mask(Gimp.ProcedureSensitivityMask.DRAWABLE)
        procedure.set_menu_label("Stylise with impasto...")
        procedure.add_menu_path("<Image>/Filters/Artistic")
        procedure.set_documentation(
            "Paint the layer in the style of an artwork",
            "Runs impasto (neural style transfer) on the active layer, or on the part of it "
            "inside the selection, and adds the result as a new layer above it.",
            name,
        )
        procedure.set_attribution("impasto", "impasto contributors", "2025")
        rw = GObject.ParamFlags.READWRITE
        procedure.add_file_argument(
            "style", "_Style image", "The artwork to paint like",
            Gimp.FileChooserAction.OPEN, True, None, rw,
        )  # fmt: skip
        procedure.add_file_argument(
            "style-2", "Second style (optional)", "Blended equally with the first",
            Gimp.FileChooserAction.OPEN, True, None, rw,
        )  # fmt: skip
        try:
            presets = _presets(_engine())
        except client.EngineError:
            presets = [{"name": client.DEFAULT_PRESET, "description": ""}]
        choice = Gimp.Choice.new()
        for index, preset in enumerate(presets):
            choice.add(preset["name"], index, preset["name"], preset.get("description") or "")
        names = [p["name"] for p in presets]
        default = client.DEFAULT_PRESET if client.DEFAULT_PRESET in names else names[0]
        procedure.add_choice_argument("preset", "_Preset", "Named recipe", choice, default, rw)
        where = Gimp.Choice.new()
        for index, (nick, label) in enumerate(client.SELECTION_MODES):
            where.add(nick, index, label, "")
        procedure.add_choice_argument(
            "selection-mode", "Se_lection", "What a selection means (without one: the layer)",
            where, client.DEFAULT_SELECTION_MODE, rw,
        )  # fmt: skip
        procedure.add_int_argument(
            "size", "Output si_ze", "Long side in px (0: the region's own size)",
            0, client.MAX_SIZE, 0, rw,
        )  # fmt: skip
        procedure.add_int_argument(
            "steps", "S_teps", "Optimisation steps (0: the preset's)", 0, 100000, 0, rw
        )
        procedure.add_double_argument(
            "style-strength", "Style st_rength", "Relative to the preset's (1 = as the preset)",
            *client.STYLE_STRENGTH, 1.0, rw,
        )  # fmt: skip
        keep = Gimp.Choice.new()
        for index, (nick, label) in enumerate(PRESERVE):
            keep.add(nick, index, label, "")
        procedure.add_choice_argument(
            "preserve-color", "_Keep colours", "Colour preservation", keep, "preset", rw
        )
        procedure.add_int_argument(
            "seed", "S_eed", "Same seed and settings, same picture", 0, 2**31 - 1, 0, rw
        )
        return procedure


def stylize(procedure, run_mode, image, drawables, config, data):
    if run_mode == Gimp.RunMode.INTERACTIVE:
        gi.require_version("GimpUi", "3.0")
        from gi.repository import GimpUi

        GimpUi.init("impasto.py")
        dialog = GimpUi.ProcedureDialog.new(procedure, config, "Stylise with impasto")
        dialog.fill(None)
        if not dialog.run():
            dialog.destroy()
            return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
        dialog.destroy()
    try:
        layer = _stylize(image, drawables, config)
    except client.Cancelled:
        return procedure.new_return_values(Gimp.PDBStatusType.CANCEL, GLib.Error())
    except client.EngineError as exc:
        return procedure.new_return_values(Gimp.PDBStatusType.EXECUTION_ERROR, GLib.Error(str(exc)))
    values = procedure.new_return_values(Gimp.PDBStatusType.SUCCESS, GLib.Error())
    Gimp.displays_flush()
    del layer
    return values


def _settings(config, region_size):
    engine = _engine()
    styles = [
        f.get_path() for f in (config.get_property("style"), config.get_property("style-2")) if f
    ]
    preset = config.get_property("preset")
    keep = config.get_property("preserve-color")
    settings = client.StyleSettings(
        styles=styles,
        preset=preset,
        size=config.get_property("size") or client.default_size(*region_size),
        steps=config.get_property("steps") or None,
        style_strength=client.strength_setting(config.get_property("style-strength")),
        preserve_color=None if keep == "preset" else keep,
        seed=config.get_property("seed"),
        selection_mode=config.get_property("selection-mode"),
    )
    settings.check()
    return engine, settings


def _region(image, layer, mode):
    """(x, y, w, h, mask, cut): the part of the canvas to send, the selection's values over it
    for the engine's mask (or None), and whether to cut the result to the selection. Without a
    selection: the layer's extent. In "mask" mode: the whole canvas, the selection as the mask.
    In "crop" mode: the layer's extent cut to the selection's bounds. With a selection the
    result is cut to it in both modes: in "mask" mode deep features spill a little style past
    the mask's edge, and outside the selection the user must see the layer below exactly."""
    _, lx, ly = layer.get_offsets()
    x0, y0, x1, y1 = lx, ly, lx + layer.get_width(), ly + layer.get_height()
    _, non_empty, sx0, sy0, sx1, sy1 = Gimp.Selection.bounds(image)
    if not non_empty or Gimp.Selection.is_empty(image):
        return x0, y0, x1 - x0, y1 - y0, None, False
    if mode == "mask":
        w, h = image.get_width(), image.get_height()
        mask = client.selection_mask(_selection_values(image, w, h), w, h)
        return 0, 0, w, h, mask, mask is not None
    x0, y0, x1, y1 = max(x0, sx0), max(y0, sy0), min(x1, sx1), min(y1, sy1)
    if x1 <= x0 or y1 <= y0:
        raise client.EngineError("the selection does not touch this layer")
    return x0, y0, x1 - x0, y1 - y0, None, True


def _selection_values(image, w, h):
    """The selection over the canvas, one byte a pixel. GIMP keeps a selection as a linear grey
    channel, so "Y u8" reads its values as they are (feathered edges grey)."""
    buffer = image.get_selection().get_buffer()
    return buffer.get(Gegl.Rectangle.new(0, 0, w, h), 1.0, "Y u8", Gegl.AbyssPolicy.NONE)


def _stylize(image, drawables, config):
    if len(drawables) != 1 or not isinstance(drawables[0], Gimp.Layer):
        raise client.EngineError("select one layer to stylise")
    source = drawables[0]
    x, y, w, h, mask, cut = _region(image, source, config.get_property("selection-mode"))
    engine, settings = _settings(config, (w, h))
    tmp = client.scratch_dir("impasto-gimp-")
    try:
        content = os.path.join(tmp, "layer.png")
        output = os.path.join(tmp, "stylized.png")
        _export_region(source, x, y, w, h, content)
        mask_path = None
        if mask is not None:
            mask_path = os.path.join(tmp, "selection.png")
            client.write_mask_png(mask_path, mask, w, h)
        Gimp.progress_init("impasto: starting the engine")

        def on_event(event):
            if isinstance(event, client.Progress):
                Gimp.progress_set_text(event.label())
                Gimp.progress_update(event.fraction)

        client.run_job(engine, content, output, settings, on_event=on_event, mask=mask_path)
        Gimp.progress_update(1.0)
        return _add_result(image, source, output, x, y, w, h, cut, settings.layer_name())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _export_region(source, x, y, w, h, path):
    """The region of the layer as an 8-bit RGB(A) PNG, through a scratch image. Where the layer
    does not reach (a canvas-wide region, a layer with offsets) the PNG is transparent, and so
    is the engine's result."""
    scratch = Gimp.Image.new(w, h, Gimp.ImageBaseType.RGB)
    try:
        copy = Gimp.Layer.new_from_drawable(source, scratch)
        scratch.insert_layer(copy, None, 0)
        _, lx, ly = source.get_offsets()
        copy.set_offsets(lx - x, ly - y)
        if (lx, ly, source.get_width(), source.get_height()) != (x, y, w, h):
            copy.add_alpha()
            copy.resize_to_image_size()
        scratch.merge_visible_layers(Gimp.MergeType.CLIP_TO_IMAGE)
        if not Gimp.file_save(Gimp.RunMode.NONINTERACTIVE, scratch, Gio.File.new_for_path(path)):
            raise client.EngineError(f"GIMP could not write the layer to {path}")
    finally:
        scratch.delete()


def _add_result(image, source, path, x, y, w, h, cut, name):
    image.undo_group_start()
    try:
        layer = Gimp.file_load_layer(
            Gimp.RunMode.NONINTERACTIVE, image, Gio.File.new_for_path(path)
        )
        if layer is None:
            raise client.EngineError(f"GIMP could not read the engine's result {path}")
        layer.set_name(name)
        image.insert_layer(layer, source.get_parent(), image.get_item_position(source))
        if (layer.get_width(), layer.get_height()) != (w, h):
            layer.scale(w, h, False)  # another output size was asked for: fit the region
        layer.set_offsets(x, y)
        if cut:
            # Keep only what the selection covers, with its soft edges.
            layer.add_alpha()
            mask = layer.create_mask(Gimp.AddMaskType.SELECTION)
            layer.add_mask(mask)
            layer.remove_mask(Gimp.MaskApplyMode.APPLY)
        image.set_selected_layers([layer])
        return layer
    finally:
        image.undo_group_end()


if __name__ == "__main__":
    Gimp.main(ImpastoPlugIn.__gtype__, sys.argv)

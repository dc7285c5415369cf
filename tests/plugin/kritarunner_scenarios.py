"""Run inside Krita by `kritarunner -s kritarunner_scenarios -f main SPEC.json` (test_krita_runner).

Drives the installed plug-in's own code (impasto_krita.job, .layers and the copied client) on
documents opened from a test image, saves each result as a .kra, and writes a JSON report the
test reads. kritarunner always exits 0, so the report is the only reliable outcome.
"""

import json
import os
import sys
import traceback


def main(args):
    spec_path = args[0] if isinstance(args, list | tuple) else args
    with open(spec_path, encoding="utf-8") as fh:
        spec = json.load(fh)
    report = {}
    try:
        _run(spec, report)
    except Exception:
        report["fatal"] = traceback.format_exc()
    tmp = spec["report"] + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(report, fh, indent=2)
    os.replace(tmp, spec["report"])


def _say(line):
    # Into kritarunner's log, which the test shows if Krita dies or hangs mid-way.
    print(line, file=sys.stderr, flush=True)


def _run(spec, report):
    from impasto_krita import impasto_client as client
    from impasto_krita.job import KritaJob
    from krita import Krita, Selection

    app = Krita.instance()
    app.setBatchmode(True)  # no dialogs: saving must not ask anything
    engine = client.read_engine_command(spec["plugin_dir"])
    out = spec["out_dir"]

    def run(name, prepare, settings, cancel_after=None, recorded=False):
        """recorded: the recording stand-in plays the engine (tests/plugin/recording_engine.py),
        its records in out/NAME/. prepare(doc) may return the layer to stylise."""
        entry = report.setdefault(name, {"events": []})
        _say(f"scenario {name}: start")
        doc = app.openDocument(spec["content"])
        node = doc.topLevelNodes()[0]
        try:
            node = prepare(doc) or node
            entry["colour"] = [doc.colorModel(), doc.colorDepth()]
            doc.setActiveNode(node)
            command = [*spec["recorder"], os.path.join(out, name)] if recorded else engine
            job = KritaJob(doc, node, settings, command)
            entry["region"] = [job.region.x, job.region.y, job.region.width, job.region.height]

            def on_event(event):
                entry["events"].append(type(event).__name__)

            try:
                layer = job.run_blocking(on_event=on_event, cancel_after=cancel_after)
                entry["status"] = "done"
                entry["new_layer"] = layer.name()
            except client.Cancelled:
                entry["status"] = "cancelled"
            except client.EngineError as exc:
                entry["status"] = "error"
                entry["message"] = str(exc)
            if job.run is not None:
                entry["returncode"] = job.run.process.returncode
                entry["pid"] = job.run.process.pid
                entry["command"] = job.run.command
            entry["temp_left"] = job._tmp is not None
            entry["layers"] = [n.name() for n in doc.topLevelNodes()]
            entry["canvas"] = [doc.width(), doc.height()]
            entry["source_depth"] = node.colorDepth()
            path = os.path.join(out, name + ".kra")
            entry["saved"] = bool(doc.saveAs(path))
            doc.waitForDone()
            entry["kra"] = path
        except Exception:
            entry["status"] = "crashed"
            entry["trace"] = traceback.format_exc()
        finally:
            doc.close()
            _say(f"scenario {name}: {entry.get('status')}")

    def settings(**kw):
        base = {"styles": [spec["style"]], "steps": spec["steps"], "seed": spec["seed"]}
        base.update(kw)
        return client.StyleSettings(**base)

    def nothing(doc):
        pass

    def select_shape(doc):
        # A rectangle with a rectangular hole: the result must keep the hole transparent.
        x, y, w, h = spec["selection"]
        hx, hy, hw, hh = spec["hole"]
        selection = Selection()
        selection.select(x, y, w, h, 255)
        hole = Selection()
        hole.select(hx, hy, hw, hh, 255)
        selection.subtract(hole)
        doc.setSelection(selection)

    def select_feathered(doc):
        # A soft selection: white inside, grey edges, nothing outside.
        x, y, w, h = spec["selection"]
        selection = Selection()
        selection.select(x, y, w, h, 255)
        selection.feather(spec["feather"])
        doc.setSelection(selection)

    def patch_layer_feathered(doc):
        # A layer that is transparent but for an opaque patch, under a soft selection.
        px, py, pw, ph = spec["patch"]
        layer = doc.createNode("Patch", "paintlayer")
        doc.rootNode().addChildNode(layer, None)
        layer.setPixelData(bytes([40, 160, 220, 255]) * (pw * ph), px, py, pw, ph)  # BGRA
        doc.waitForDone()
        select_feathered(doc)
        return layer

    def to_16_bit(doc):
        doc.setColorSpace("RGBA", "U16", "sRGB-elle-V2-srgbtrc.icc")
        doc.waitForDone()

    def to_grey(doc):
        doc.setColorSpace("GRAYA", "U8", "")
        doc.waitForDone()

    run("plain", nothing, settings())
    run("selection", select_shape, settings(selection_mode="crop"))
    run("feathered", select_feathered, settings(), recorded=True)
    run("patch_layer", patch_layer_feathered, settings(), recorded=True)
    run("feathered_real", select_feathered, settings(steps=spec["masked_steps"]))
    run("sixteen_bit", to_16_bit, settings())
    run("grey", to_grey, settings())
    run("engine_error", nothing, settings(styles=[spec["bad_style"]]))
    run("cancel", nothing, settings(steps=2000), cancel_after=2)
    _say("scenarios done")

"""A stand-in for the `impasto` command in the editor tests: it records what a plug-in sends.

usage: python recording_engine.py RECORD_DIR stylize CONTENT STYLE... -o OUT [options]

Writes RECORD_DIR/argv.json (the arguments after RECORD_DIR), copies the content picture to
RECORD_DIR/content.png and each --mask file to RECORD_DIR/mask-N.png (the plug-in deletes its
own copies when the job ends), writes the content picture as the "result" and prints the JSON
lines a run prints. Anything but `stylize` (a dialog's questions about presets) goes to the
real `impasto` beside the Python that runs this file (the project's virtual environment).
"""

import json
import os
import shutil
import sys


def main(argv):
    record, args = argv[0], argv[1:]
    if args[:1] != ["stylize"]:
        impasto = os.path.join(os.path.dirname(sys.executable), "impasto")
        os.execv(impasto, [impasto, *args])
    os.makedirs(record, exist_ok=True)
    with open(os.path.join(record, "argv.json"), "w", encoding="utf-8") as fh:
        json.dump(args, fh)
    content, output = args[1], args[args.index("-o") + 1]
    shutil.copyfile(content, os.path.join(record, "content.png"))
    masks = [args[i + 1] for i, arg in enumerate(args) if arg == "--mask"]
    for n, mask in enumerate(masks, 1):
        shutil.copyfile(mask, os.path.join(record, f"mask-{n}.png"))
    shutil.copyfile(content, output)  # the photo itself, unpainted
    print(json.dumps({"event": "start", "total": 1, "scales": [[8, 8, 1]]}), flush=True)
    print(json.dumps({"event": "done", "output": output, "cancelled": False, "stats": {}}))


if __name__ == "__main__":
    main(sys.argv[1:])

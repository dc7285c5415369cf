"""The `impasto` command. Each subcommand lives in its own module; this file only dispatches.

Exit codes: 0 done, 1 unexpected failure, 2 bad input (one line on stderr, no traceback),
130 interrupted by Ctrl-C (the best image so far is still written), 143 by SIGTERM.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import sys

from impasto import load_engine
from impasto.errors import ImpastoError

# Subcommand -> module with add_arguments(parser) and run(args) -> exit code. Imported only when
# that subcommand runs, so `impasto presets list` never pays for TensorFlow or Gradio.
SUBCOMMANDS = {
    "stylize": ("impasto.cli_stylize", "paint a photo in the style of one or more artworks"),
    "batch": ("impasto.cli_batch", "paint many photos with one recipe, here or on a Ray cluster"),
    "presets": ("impasto.cli_presets", "list, show, copy and compare the named recipes"),
    "weights": ("impasto.cli_weights", "show or install the VGG19 weights"),
    "serve": ("gradio_app.cli", "start the web app (Gradio)"),
    "watch": ("hotfolder.cli", "run the hot-folder daemon"),
    "plugin": ("plugin.cli", "install or remove the Krita / GIMP plug-in"),
}


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error: a mistyped option (`--steps nan`) gets the problem and
    where to look, not the whole usage. Sub-command parsers are made of the same class."""

    def error(self, message: str):
        print(f"impasto: error: {message} (see `{self.prog} --help`)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="impasto", description="Paint a photo in the style of an artwork (Gatys et al.)."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log what the engine does")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_text) in SUBCOMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module)
        if name == _requested():
            importlib.import_module(module).add_arguments(p)
    return parser


def _requested() -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    for word in sys.argv[1:]:
        if not word.startswith("-"):
            return word
    return None


# The doors import the engine through this one function (it hides TensorFlow's start-up chatter).
import_engine = load_engine


def main(argv: list[str] | None = None) -> int:
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    parser = build_parser()
    args = parser.parse_args()
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="impasto: %(message)s",
    )
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1" if args.verbose else "3")
    try:
        return importlib.import_module(args._module).run(args)
    except ImpastoError as exc:
        print(f"impasto: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())

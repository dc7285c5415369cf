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
from importlib.metadata import entry_points

from impasto import __version__
from impasto.errors import ImpastoError

# The core's own sub-commands -> module with HELP, add_arguments(parser) and run(args) -> exit
# code. The doors (web app, hot folder, plug-ins) add theirs through the entry-point group
# below, so this file names none of them. A module is imported only when its sub-command runs
# (or for the overall help), so `impasto presets list` never pays for TensorFlow or Gradio.
CORE_COMMANDS = {
    "stylize": "impasto.commands.stylize",
    "batch": "impasto.commands.batch",
    "presets": "impasto.commands.presets",
    "weights": "impasto.commands.weights",
    "doctor": "impasto.commands.doctor",
    "engine": "impasto.commands.engine",
}
COMMAND_GROUP = "impasto.commands"


def subcommands() -> dict[str, str]:
    """Every sub-command and its module: the core's, then each installed door's."""
    found = dict(CORE_COMMANDS)
    for ep in sorted(entry_points(group=COMMAND_GROUP), key=lambda ep: ep.name):
        found.setdefault(ep.name, ep.value)
    return found


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
    parser.add_argument("--version", action="version", version=f"impasto {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    requested = _requested()
    # A core sub-command skips the scan of installed distributions for the doors' entry points:
    # a tenth of a second that every plug-in run would pay.
    commands = (
        {requested: CORE_COMMANDS[requested]} if requested in CORE_COMMANDS else subcommands()
    )
    for name, module_name in commands.items():
        # Only the sub-command asked for is imported (all of them for `impasto --help`).
        module = (
            importlib.import_module(module_name)
            if requested == name or requested not in commands
            else None
        )
        help_text = module.HELP if module else None
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.set_defaults(_module=module_name)
        if module and requested == name:
            module.add_arguments(p)
    return parser


def _requested() -> str | None:
    """The subcommand named on the command line (the first word that is not an option)."""
    for word in sys.argv[1:]:
        if not word.startswith("-"):
            return word
    return None


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
        code = importlib.import_module(args._module).run(args)
    except ImpastoError as exc:
        print(f"impasto: error: {exc}", file=sys.stderr)
        return 2
    if argv is None and args._module == "impasto.commands.stylize" and "tensorflow" in sys.modules:
        # The program itself (not a caller of main()), done painting alone: TensorFlow's
        # teardown at exit takes a second or two and does nothing a finished command needs
        # (the picture is written, synced and closed).
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(main())

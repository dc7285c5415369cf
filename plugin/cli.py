"""`impasto plugin install|uninstall krita|gimp [--dest DIR]`: put the editor plug-ins in place."""

from __future__ import annotations

import argparse

from impasto.errors import ImpastoError
from impasto.plugin import install

HELP = "install or remove the Krita / GIMP plug-in"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    for action, help_text in (
        ("install", "copy the plug-in into the editor's user folder and switch it on"),
        ("uninstall", "remove the plug-in and switch it off"),
    ):
        a = sub.add_parser(action, help=help_text, description=help_text)
        a.add_argument("editor", choices=install.EDITORS, help="krita or gimp (GIMP 3)")
        a.add_argument(
            "--dest",
            metavar="DIR",
            help="another profile folder: Krita's resource folder (holds pykrita/, default "
            f"{install.default_krita_dir()}) or GIMP 3's profile (holds plug-ins/, default "
            f"{install.default_gimp_dir()})",
        )
        a.add_argument(
            "--kritarc",
            metavar="FILE",
            help="Krita only: the settings file to enable the plug-in in "
            f"(default {install.default_kritarc()})",
        )


def run(args: argparse.Namespace) -> int:
    if args.editor == "krita":
        fn = install.install_krita if args.action == "install" else install.uninstall_krita
        report = fn(args.dest, args.kritarc)
    else:
        if args.kritarc:
            raise ImpastoError("--kritarc is for Krita only")
        fn = install.install_gimp if args.action == "install" else install.uninstall_gimp
        report = fn(args.dest)
    name = {"krita": "Krita", "gimp": "GIMP 3"}[report.editor]
    print(
        f"impasto: {report.action} the {name} plug-in"
        if report.action != "not installed"
        else f"impasto: the {name} plug-in is not installed; nothing to remove"
    )
    width = max((len(label) for label, _ in report.lines), default=0)
    for label, text in report.lines:
        print(f"  {label + ':':<{width + 1}} {text}")
    for hint in report.hints:
        print(hint)
    return 0

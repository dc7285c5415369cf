"""`impasto weights [install]`: where the VGG19 weights are, and getting them."""

from __future__ import annotations

import argparse

from impasto.engine import weights

HELP = "show or install the VGG19 weights"  # one line in `impasto --help`


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", nargs="?", choices=("status", "install"), default="status")


def run(args: argparse.Namespace) -> int:
    if args.action == "install":
        path = weights.install(log_line=lambda line: print(f"impasto: {line}"))
        print(f"impasto: VGG19 weights installed and verified (md5 {weights.MD5}): {path}")
        return 0
    st = weights.status()
    if st.path is None:
        print(f"VGG19 weights: not found or not verified ({st.problem})")
        print(f"to get them: {weights.INSTALL_HINT}")
        return 1
    print(f"VGG19 weights: {st.path} (md5 verified)")
    return 0

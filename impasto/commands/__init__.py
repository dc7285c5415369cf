"""The core's sub-commands of `impasto` (stylize, batch, presets, weights, doctor, engine), one
module each with HELP, add_arguments(parser) and run(args); `impasto/cli.py` dispatches to them
and to the doors' entry points."""

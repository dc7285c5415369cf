"""The engine: everything that paints, and nothing a door needs to build a job.

`loop.py` runs a job (coarse to fine, the picture itself is the variable); `objective.py` and
`tiling.py` evaluate the loss and its gradient, whole or in tiles, over the one list of terms in
`terms.py` (built from `losses.py` on the features of `model.py`). The rest serves them: weights,
precision, memory budget, optimisers, colour, checkpoints, and what this machine is.

This file imports nothing, so `impasto.engine.vgg19` and `impasto.engine.memory` stay cheap for
the preset checker and the doors; TensorFlow comes with `impasto.engine.loop`
(`impasto.load_engine()`).
"""

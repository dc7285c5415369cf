"""The job vocabulary's numbers: every limit and default a door needs to build a job, in one
place. The engine checks jobs against these (impasto.job, impasto.presets); the doors offer
them (the command line, the web form, the hot folder's config, the editors' dialogs).

Plain constants and no imports: `impasto plugin install` copies this file beside the editor
plug-ins' client (as impasto_limits.py), whose Pythons have neither TensorFlow nor impasto.
"""

# The output's long side, px. Below MIN_SIZE the coarse-to-fine pyramid has nothing to paint
# on; MAX_SIZE is the longest side the engine paints (see impasto.images for the input limits).
MIN_SIZE = 32
MAX_SIZE = 8192

DEFAULT_PRESET = "classic"  # the recipe every door starts from
PRESERVE_COLOR = ("none", "luminance", "histogram")  # a recipe's preserve_color choices
MIN_STEPS = 1  # a job's total optimisation steps, at least

# Style strength: a factor on the preset's style_weight (1 = the preset's own), which the
# engine resolves (presets.apply_overrides), so the doors never read a preset to multiply it.
STYLE_STRENGTH = (0.05, 50.0)

# The web app: what one visitor may ask of a shared machine (`impasto serve` sets the maxima).
WEB_MIN_SIZE = 64  # the page's size slider starts here
WEB_MAX_SIZE = 1024  # default of --max-size
WEB_MAX_STEPS = 1000  # default of --max-steps
WEB_STYLE_STRENGTH = (0.25, 4.0)  # the slider's range, inside STYLE_STRENGTH
WEB_MAX_SEED = 2**31 - 1

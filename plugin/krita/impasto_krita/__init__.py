"""impasto for Krita: Tools > Scripts > "Stylise with impasto..." paints the active layer (or the
selection on it) in the style of an artwork, as a new layer above it.

Krita loads this package from its pykrita folder (see impasto_krita.desktop). It never imports
impasto: it runs the `impasto` command recorded in impasto_settings.json at install time.
"""

from krita import Krita

from .extension import ImpastoExtension

Krita.instance().addExtension(ImpastoExtension(Krita.instance()))

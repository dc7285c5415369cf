"""Editor plug-ins for impasto: Krita (krita/) and GIMP 3 (gimp/), the plain-Python client they
share (client.py), and `impasto plugin install|uninstall` (cli.py, install.py)."""

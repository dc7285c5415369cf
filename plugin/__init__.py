"""plugin for impasto."""

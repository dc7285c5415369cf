"""hotfolder for impasto."""

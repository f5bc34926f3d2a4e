"""archivectl: household customer dossiers kept as a signed git archive."""

__version__ = "0.1.0"

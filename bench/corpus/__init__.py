"""The real-model corpus: pretrained models taken out of PyPI wheels at corpus-build time (never committed)."""

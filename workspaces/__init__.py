"""Global Workspace router over specialised modules (arXiv 2503.01906)."""

"""Model families that run on reasonkit's kernels (GatedLM) and the built-in checkpoints."""

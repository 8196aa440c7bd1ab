"""Checkpoints shipped inside the package (data only; loaded through ``reasonkit.backends.loading``)."""

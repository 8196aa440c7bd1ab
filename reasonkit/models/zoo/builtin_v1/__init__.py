"""The first built-in model (v1), kept so that figures measured on it stay reproducible:
``load_backend("builtin-v1")``. It is rebuilt by the ``reasonkit train-lm`` config in its reasonkit.json
(docs/builtin-model.md, "Versions"); the shipped ``builtin`` is v4, continued from it.
"""

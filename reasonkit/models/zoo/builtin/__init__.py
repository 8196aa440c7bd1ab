"""The shipped built-in model: ``load_backend("builtin")`` loads this directory (see docs/builtin-model.md).

Files: config.json, model.safetensors, tokenizer.json, tokenizer_config.json and reasonkit.json
(``{"prompt_pack": "compact2", "version": "v4", ...}`` plus the exact ``reasonkit train-lm`` config that produced it).
This module exists so that the directory installs with the package.
"""

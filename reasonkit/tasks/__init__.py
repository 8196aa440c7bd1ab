"""Built-in task generators (the arith task of the embedded default)."""

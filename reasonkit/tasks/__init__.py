"""Built-in task generators: ``reasonkit.tasks.arith``, the arith task of the embedded default.

    >>> from reasonkit.tasks import arith
    >>> arith.evaluate("2*(3+4)")
    14

See docs/arith.md.
"""

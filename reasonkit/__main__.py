"""``python -m reasonkit`` is the same as the ``reasonkit`` command."""

from reasonkit.cli import main

raise SystemExit(main())

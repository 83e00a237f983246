"""``python -m bitnet``: the command line (see :mod:`bitnet.cli`)."""

from .cli import main

raise SystemExit(main())

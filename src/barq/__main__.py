"""``python -m barq``: the same as the ``barq`` command."""

from barq.cli import main

raise SystemExit(main())

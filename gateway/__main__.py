"""`python -m gateway ...` — see gateway.cli."""

from .cli import main

raise SystemExit(main())

"""`python -m faults`: the same as `python -m faults.run`."""

from .run import main

raise SystemExit(main())

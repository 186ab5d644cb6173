"""`python -m switch` is the `softswitch` command."""

from switch.cli import main

raise SystemExit(main())

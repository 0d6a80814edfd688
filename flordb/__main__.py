"""``python -m flordb`` runs the command line."""

from flordb.cli import main

raise SystemExit(main())

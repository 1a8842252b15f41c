"""``python -m strangler`` runs the command line."""

from strangler.cli import main

raise SystemExit(main())

"""``python -m geomalign`` runs the command line."""

import sys

from geomalign.cli import main

sys.exit(main())

"""python -m hyprof: see hyprof.cli."""

import sys

from .cli import main

sys.exit(main())

"""Build trajectory and step-level preference pairs from explored episodes and expert trajectories (ETO step 3).

    python construct_preference.py --help

The original's command line; the code is ``eto.construct.preference``."""

import sys

from eto.construct.preference import main

if __name__ == "__main__":
    sys.exit(main())

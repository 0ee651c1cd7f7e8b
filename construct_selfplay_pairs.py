"""Build preference pairs from a policy's own episodes, without expert trajectories (self-play).

    python construct_selfplay_pairs.py --help

The original's command line; the code is ``eto.construct.selfplay_pairs``."""

import sys

from eto.construct.selfplay_pairs import main

if __name__ == "__main__":
    sys.exit(main())

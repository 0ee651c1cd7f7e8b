"""Build RFT's training set: the expert trajectories plus the explored episodes that succeeded.

    python construct_rft_data.py --help

The original's command line; the code is ``eto.construct.rft_data``."""

import sys

from eto.construct.rft_data import main

if __name__ == "__main__":
    sys.exit(main())

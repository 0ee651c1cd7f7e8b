"""Training entry points: ``train.py`` (SFT) and the data format they read (``sft_data.py``).

The installed FastChat's own training scripts stay importable beside ours (``fastchat.train.*``).
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

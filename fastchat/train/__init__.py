"""Training entry points: ``train.py`` (SFT) and ``train_dpo.py`` (DPO), thin scripts over the
shared trainer core (``eto.trainer_core``) and record formats (``eto.records``).

The installed FastChat's own training scripts stay importable beside ours (``fastchat.train.*``).
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

"""This repo's half of the ``fastchat`` package.

Run from the repo root, ``import fastchat`` finds this folder first. ``extend_path`` then
appends the installed FastChat (``pip install fschat``) to the package path, so
``fastchat.serve.*``, ``fastchat.conversation`` ... come from the real FastChat while the
modules defined here (``fastchat.launch``, ``fastchat.compat``, the training entry points in
``fastchat/train/``) come from this repo. The installed package's own ``__init__`` (only
``__version__``) is not run, so we mirror it.

Importing this package changes nothing else: the compatibility fixes (``fastchat.compat``) are
installed by ``fastchat/serve/__init__.py``, when FastChat's servers are imported.
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

from fastchat.compat import installed_fastchat_version  # noqa: E402

__version__ = installed_fastchat_version()

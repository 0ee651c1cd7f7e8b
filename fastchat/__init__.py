"""This repo's half of the ``fastchat`` package.

Run from the repo root, ``import fastchat`` finds this folder first. ``extend_path`` then
appends the installed FastChat (``pip install fschat``) to the package path, so
``fastchat.serve.*``, ``fastchat.conversation`` ... come from the real FastChat while the
modules defined here (``fastchat.train.*``, ``fastchat.chat_format``, ``fastchat.compat``)
come from this repo. The installed package's own ``__init__`` (only ``__version__``) is not
run, so we mirror it.

Importing this package also installs the compatibility fixes in ``fastchat.compat``; they
are applied lazily, when each affected FastChat module is first imported.
"""

import pkgutil

__path__ = pkgutil.extend_path(__path__, __name__)

from fastchat import compat as _compat  # noqa: E402

__version__ = _compat.installed_fastchat_version()
_compat.install()

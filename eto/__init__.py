"""Shared foundations of the ETO project: record formats (``eto.records``), file I/O (``eto.io``),
the chat format (``eto.chat_format``) and the trainers' common core (``eto.trainer_core``).

Everything else builds on these: the harness (``eval_agent``), the pair builder
(``construct_preference.py``), the trainers (``fastchat/train``) and the serving fixes
(``fastchat``). Nothing here imports those.
"""

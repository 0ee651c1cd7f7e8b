"""The ETO project's own package.

Its foundations: record formats (``eto.records``), file I/O (``eto.io``), the chat format
(``eto.chat_format``), the trainers' common core (``eto.trainer_core``), model fingerprints
(``eto.weights``), engines and processes. Everything else builds on these: the harness
(``eval_agent``), the trainers (``fastchat/train``) and the serving fixes (``fastchat``); the
foundations import none of those.

On top of the harness sit the data stages (``eto.construct``: pairs, RFT data, self-play pairs)
and the run's machinery (``eto.pipeline``, which run_eto.sh calls).
"""

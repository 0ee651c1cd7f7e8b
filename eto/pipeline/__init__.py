"""The machinery of an ETO run, which run_eto.sh calls between the commands it spells out:
settings and presets (``settings``, ``setup``), the one namer of a run's files (``paths``), stages
with markers, logs and resume (``stages``, ``markers``), one run per experiment (``lock``), the
model servers (``servers``), the empty-data rules (``rules``) and the other methods' plans
(``methods``, ``commands``). ``python -m eto.pipeline`` is its command line."""

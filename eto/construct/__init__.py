"""The data stages between exploration and training: preference pairs against the expert
(``preference``: ETO's trajectory-level and step-level pairs), RFT's training set
(``rft_data``) and self-play pairs without expert data (``selfplay_pairs``). Each is a module
with a ``main()``; the top-level ``construct_*.py`` scripts run them under the original's names."""

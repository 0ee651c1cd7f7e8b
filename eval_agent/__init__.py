"""Evaluation and exploration harness: a served policy plays tasks; every episode is saved."""

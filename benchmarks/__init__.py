"""Scripts that print figures (not tests); run from the repo root as ``python -m benchmarks.<name>``."""

"""The one-shot avatar builder: a mesh-bound Gaussian avatar from a single portrait (see build.py)."""

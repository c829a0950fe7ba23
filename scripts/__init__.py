"""The command-line tools; each runs from a checkout as `python scripts/NAME.py`."""

"""What every shopstream script shares on its command line."""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """An argument parser whose misuse message is one line, not a usage dump."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: {message} (see --help)\n")

"""Backtesting: recorded events through the worker's own Processor, the
metrics and report it leaves, and the reference run live runs are held to."""

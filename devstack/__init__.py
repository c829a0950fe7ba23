"""The local services tests, demo and benchmark run on: a broker and Redis on
loopback, and worker processes started from Python."""

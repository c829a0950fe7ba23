"""What a worker runs (``faust -A stream.app worker``): the event contract, the
Processor, state in Redis, Kafka plumbing, alerts and the web views."""

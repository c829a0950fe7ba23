"""A simulated shop: seeded synthetic traffic with planted churners and fraud,
and sending events to the input topics."""

"""The learners: one concept a module, river's verbs, no I/O."""

"""framewax flows: the vision dataflow, its config, registry and in-process runner."""

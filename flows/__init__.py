"""framewax flows: the vision dataflow's wiring, its config, registry, runtime and
in-process runner, the Gymnasium env, and the record / emulator / training commands."""

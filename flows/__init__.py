"""framewax flows: the vision dataflow's wiring and what runs it. A new command goes here.

:mod:`.vision` wires the dataflow (``python -m bytewax.run flows.vision``) from a
config (:mod:`.config`, stages by name through :mod:`.registry`); :mod:`.runtime`
is what one run shares (ledger, store, stages, stop and signals) and
:mod:`.report` what it says about itself; :mod:`.runner` runs the flow in this
process. :mod:`flows.rl` holds the Gymnasium envs. The commands users type are
modules here: ``python -m flows.record``, ``flows.calibrate``, ``flows.summary``,
``flows.doom``, ``flows.ollama_server``, ``flows.train_ppo``.
"""

"""Sinks: where resolved items leave the dataflow. A new sink goes here.

:mod:`.memory` keeps the freshest observation per stream and a bounded ordered
history for the env (:class:`~sinks.memory.ObservationStore`), and resolves
every item in the ledger; :mod:`.recorder` writes captured frames as a
recording that :mod:`operators.capture.replay` replays. Nothing here imports
:mod:`flows`.
"""

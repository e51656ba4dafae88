"""framewax operators: every stage's logic, and the item types that flow between stages.

Every module here is plain Python with an injected clock
(:mod:`operators.clock`), except :mod:`operators.steps`, the one module that
adapts the stages to Bytewax. Nothing here imports :mod:`sinks` or :mod:`flows`.
"""

"""Side-by-side measurements that write their numbers to a file (``--out``); each can fail.

Run one as a script (``python benchmarks/vision.py --out ...``) or a module
(``python -m benchmarks.vision``); every result file starts with the same
:func:`benchmarks.header.run_header` (machine, versions, commit, command).
"""

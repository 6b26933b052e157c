"""The pure scheduling core of gpupool.

Everything here is deterministic: no I/O, no wall clock, no threads, no global random
state. Time (integer milliseconds) and seeds are arguments. The live service and the
simulator drive the same ``Scheduler`` through events and receive decisions as data.
``tests/test_purity.py`` enforces that no module here imports I/O or clock facilities.
"""

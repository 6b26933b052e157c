"""gpupool: share a national GPU pool fairly and fast.

Packages:
- ``gpupool.core``: the pure scheduling core (no I/O, no wall clock, no global RNG).
- ``gpupool.fleetfile``: loads fleet, tenant and catalogue files and the shipped presets.
- ``gpupool.sim``: the digital twin (discrete-event driver, traces, generator, metrics, reports).
- ``gpupool.cli``: the ``gpupool`` command.
"""

__version__ = "0.1.0"

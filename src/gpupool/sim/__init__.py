"""The digital twin: a discrete-event driver of the production scheduling core.

It reads traces, generates workloads, models runtimes, and computes metrics and reports.
It imports ``gpupool.core`` and never reimplements a scheduling decision.
"""

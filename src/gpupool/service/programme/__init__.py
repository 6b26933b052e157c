"""The national programme (ADR 0010): calls, applications, reviews and awards.

This package owns the rules of the programme, apart from HTTP: the state machines of calls
and applications (``calls``, ``applications``), who may read and review what and the
conflict-of-interest check (``reviews``), and turning an award into allocations within what
the call has left (``awards``). A rule that says no raises ``Refusal``; the API answers it as
a problem document.
"""

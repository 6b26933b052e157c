"""Reports over the live service's records: usage over time, and the public accountability report.

``buckets`` owns the time axis (day, week and month buckets; periods such as ``2026-Q1``),
``usage_table`` the usage report's rows (GPU-hours, effective GPU-hours, jobs, waits and share
of entitlement per group, model and bucket, within what the caller may see), ``public`` the
public report's figures, and ``public_page`` its self-contained HTML page and CSV files.
"""

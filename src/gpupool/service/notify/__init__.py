"""Notifications: webhooks and e-mail about applications, awards, allocations and jobs (ADR 0011).

``events`` turns what the service already records (audit rows, the loop's event log, the
allocations) into notification events and their deliveries; ``destinations`` decides which
webhook hosts and addresses may be targets; ``channels`` posts signed JSON and sends mail;
``worker`` is the thread that does all of it off the request path, with retries.
"""

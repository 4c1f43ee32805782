"""Notifications (issue 15): the operator is reached, not polled.

:mod:`.events` turns bus events into notifications (pure); :mod:`.outbox` keeps them in
``notify_outbox`` until delivered; :mod:`.digest` decides, without I/O, what goes alone
and what as one digest; :mod:`.sinks` and :mod:`.command` are the transports (a signed
webhook, ntfy, a command); :mod:`.dispatcher` is the service the hive runs.
"""

"""The audit trail: security-relevant events of ns and sfs, stored durably and sent as CloudEvents.

``AuditTrail.record`` is the entry point the flows call. It writes one row (the durable copy, kept for
the retention time whatever becomes of delivery) and hands the event to the configured webhook sinks,
which deliver it in the background: a slow or failing sink never delays or fails a login. A login that
succeeded stores its event with its session instead (``AuditTrail.event``, then ``announce``).
"""

from authserver.audit.catalogue import EVENT_TYPES, TYPE_PREFIX
from authserver.audit.trail import AuditTrail

__all__ = ["EVENT_TYPES", "TYPE_PREFIX", "AuditTrail"]

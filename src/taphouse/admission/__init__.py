"""Admission control: who may use how much of the service at once.

- :mod:`~taphouse.admission.addresses`: trusted proxies, client addresses and the key a
  caller is budgeted under (account, or address with IPv6 by /64);
- :mod:`~taphouse.admission.limits`: caps on concurrent work and bytes per caller,
  refusing at once (503 with Retry-After, 413) instead of queueing;
- :mod:`~taphouse.admission.connections`: slow clients and connections per address,
  and the uvicorn options that put both in place.
"""

from taphouse.admission.addresses import (
    ForwardedHeaders,
    TrustedProxies,
    address_key,
    caller_key,
    is_loopback,
)
from taphouse.admission.limits import (
    ByteBudget,
    Overloaded,
    Slot,
    SlotPool,
    TooLarge,
    read_body,
    spool_body,
)

__all__ = ["ByteBudget", "ForwardedHeaders", "Overloaded", "Slot", "SlotPool", "TooLarge",
           "TrustedProxies", "address_key", "caller_key", "is_loopback", "read_body",
           "spool_body"]

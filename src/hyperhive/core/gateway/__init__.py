"""The model gateway (DESIGN §9/§10): the core serves the Messages API to each agent on
its own ``api.sock`` and forwards to the upstream with a credential only the core holds,
metering every response and admitting requests under hive-wide caps.

The parts meet at :mod:`.seams`: the server asks a :class:`~.seams.CredentialSource` for
the headers that authenticate a request and a :class:`~.seams.Metering` whether an agent
may send and what its answers cost.
"""

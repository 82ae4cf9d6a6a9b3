"""Constants shared by the remotes tests (a module with a unique name: several test
folders have helpers)."""

#: The remote's limits (its capabilities advertise them).
REMOTE_MAXREC_DEFAULT = 50
REMOTE_MAXREC_HARD = 200
#: The outbound allow-list that lets the platform reach servers on this machine.
LOOPBACK = ("127.0.0.0/8", "::1")

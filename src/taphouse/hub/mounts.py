"""Where the hub's pieces are inside a user's server sandbox (shared by the spawner, in
the hub's process, and :mod:`taphouse.hub.singleuser`, in the sandbox; this module
imports nothing, so the hub's process needs no Jupyter server packages)."""

HUB_ENV_MOUNT = "/opt/taphouse/hub/env"
HUB_LIB_MOUNT = "/opt/taphouse/hub/lib"
HUB_CONFIG_MOUNT = "/opt/taphouse/hub/config"
#: Jupyter's runtime files and each kernel's directory (connection file, ipc sockets).
RUNTIME_DIR = "/tmp/jupyter/runtime"
KERNELS_DIR = "/tmp/jupyter/kernels"
DATA_DIR = "/tmp/jupyter/data"

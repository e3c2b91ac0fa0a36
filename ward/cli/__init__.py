"""`wardctl`, Ward's command-line client: etcdctl 3.4's commands and output, and Ward's own.

gRPC reads its log verbosity once, when it is first imported, and otherwise writes transport
noise (TLS handshake failures...) to stderr, which etcdctl's output does not have. The CLI is
the only importer of this package, so it sets the default here, before anything loads gRPC.
"""

import os

os.environ.setdefault("GRPC_VERBOSITY", "NONE")

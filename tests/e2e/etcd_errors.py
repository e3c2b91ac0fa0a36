"""What etcd answers, as (gRPC status, message): the end-to-end tests' expectations.

Written from etcd's behaviour (checked against the real etcd 3.4), deliberately not imported
from Ward's own error table, so that a wrong string in Ward fails the tests.
"""

from __future__ import annotations

import grpc

IA = grpc.StatusCode.INVALID_ARGUMENT
OOR = grpc.StatusCode.OUT_OF_RANGE

EMPTY_KEY = (IA, "etcdserver: key is not provided")
KEY_NOT_FOUND = (IA, "etcdserver: key not found")
VALUE_PROVIDED = (IA, "etcdserver: value is provided")
LEASE_PROVIDED = (IA, "etcdserver: lease is provided")
TOO_LARGE = (IA, "etcdserver: request is too large")
TOO_MANY_OPS = (IA, "etcdserver: too many operations in txn request")
DUPLICATE_KEY = (IA, "etcdserver: duplicate key given in txn request")
COMPACTED = (OOR, "etcdserver: mvcc: required revision has been compacted")
FUTURE_REV = (OOR, "etcdserver: mvcc: required revision is a future revision")
LEASE_NOT_FOUND = (grpc.StatusCode.NOT_FOUND, "etcdserver: requested lease not found")
NO_SPACE = (grpc.StatusCode.RESOURCE_EXHAUSTED, "etcdserver: mvcc: database space exceeded")

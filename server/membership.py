"""Member and cluster IDs, derived as etcd derives them, so IDs look and behave alike."""

from __future__ import annotations

import hashlib
import struct


def member_id(peer_urls: list[str], cluster_token: str) -> int:
    """etcd's computeMemberID: SHA-1 of the sorted peer URLs and the cluster token."""
    data = "".join(sorted(peer_urls)).encode() + cluster_token.encode()
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]


def cluster_id(member_ids: list[int]) -> int:
    """etcd's genID: SHA-1 of the sorted member IDs."""
    data = b"".join(struct.pack(">Q", m) for m in sorted(member_ids))
    return struct.unpack(">Q", hashlib.sha1(data).digest()[:8])[0]

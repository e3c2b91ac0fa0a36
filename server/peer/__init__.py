"""The Raft peer transport: the wire codec, and the gRPC streams and calls between members."""

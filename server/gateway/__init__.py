"""HTTP endpoints of a member: etcd's JSON gateway, /metrics and the health checks."""

from server.gateway.jsonapi import ROUTES, JSONGateway, Route
from server.gateway.member import serve_http
from server.gateway.service import Endpoints, HealthSource, check_health

__all__ = [
    "ROUTES",
    "Endpoints",
    "HealthSource",
    "JSONGateway",
    "Route",
    "check_health",
    "serve_http",
]

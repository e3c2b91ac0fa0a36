"""Ward's auth core: users, roles, permission ranges, password hashing and tokens.

Pure domain logic with no I/O: storage is reached through ``AuthBackend``, which the storage
layer implements. The server calls ``AuthStore`` (see ``auth.store`` for its propose, apply and
read sides) and maps ``AuthError`` to gRPC statuses by ``error.code``/``error.message``.
"""

from auth.apply import Applied
from auth.backend import AuthBackend
from auth.commands import (
    AuthCommand,
    AuthDisable,
    AuthEnable,
    RoleAdd,
    RoleDelete,
    RoleGrantPermission,
    RoleRevokePermission,
    UserAdd,
    UserChangePassword,
    UserDelete,
    UserGrantRole,
    UserRevokeRole,
)
from auth.errors import AuthConfigError, AuthError, GrpcCode
from auth.jwt_tokens import JWTTokenProvider, PublishedKey
from auth.memory import MemoryAuthBackend
from auth.model import (
    FROM_KEY,
    ROOT_ROLE,
    ROOT_USER,
    Permission,
    PermissionType,
    Role,
    TokenInfo,
    User,
)
from auth.passwords import (
    BCRYPT_DEFAULT_COST,
    DEFAULT_COST,
    TEST_COST,
    HashCost,
    PasswordHasher,
    cost_from_bcrypt,
)
from auth.providers import token_provider_from_options
from auth.ranges import UserPermissions, build_user_permissions
from auth.ratelimit import RateLimit, RateLimiter
from auth.simple_tokens import SimpleTokenProvider
from auth.store import AuthStatus, AuthStore
from auth.tokens import (
    DEFAULT_TTL,
    SignMethod,
    TokenKind,
    TokenOptions,
    TokenProvider,
    parse_token_options,
)

__all__ = [
    "BCRYPT_DEFAULT_COST",
    "DEFAULT_COST",
    "DEFAULT_TTL",
    "FROM_KEY",
    "ROOT_ROLE",
    "ROOT_USER",
    "TEST_COST",
    "Applied",
    "AuthBackend",
    "AuthCommand",
    "AuthConfigError",
    "AuthDisable",
    "AuthEnable",
    "AuthError",
    "AuthStatus",
    "AuthStore",
    "GrpcCode",
    "HashCost",
    "JWTTokenProvider",
    "MemoryAuthBackend",
    "PasswordHasher",
    "Permission",
    "PermissionType",
    "PublishedKey",
    "RateLimit",
    "RateLimiter",
    "Role",
    "RoleAdd",
    "RoleDelete",
    "RoleGrantPermission",
    "RoleRevokePermission",
    "SignMethod",
    "SimpleTokenProvider",
    "TokenInfo",
    "TokenKind",
    "TokenOptions",
    "TokenProvider",
    "User",
    "UserAdd",
    "UserChangePassword",
    "UserDelete",
    "UserGrantRole",
    "UserPermissions",
    "UserRevokeRole",
    "build_user_permissions",
    "cost_from_bcrypt",
    "parse_token_options",
    "token_provider_from_options",
]

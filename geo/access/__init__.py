"""Who may do what and who did what: API keys, roles and principals, the operator a key speaks
for, who a key is (:func:`describe_caller`, behind ``GET /me``), the audit trail
(:mod:`~geo.access.audit`) and personal data (:mod:`~geo.access.personal_data`).
"""

from geo.access.keys import (
    KEY_PREFIX,
    PREFIX_LENGTH,
    InvalidKey,
    KeyNotFound,
    NewKey,
    authenticate,
    bind_operator,
    create_key,
    describe_caller,
    hash_key,
    key_operator,
    list_keys,
    revoke_key,
    rotate_key,
)
from geo.access.principals import (
    ANONYMOUS,
    ROLES,
    SYSTEM,
    AuthenticationFailed,
    PermissionDenied,
    Principal,
    Role,
    cli_principal,
)

__all__ = [
    "ANONYMOUS",
    "KEY_PREFIX",
    "PREFIX_LENGTH",
    "ROLES",
    "SYSTEM",
    "AuthenticationFailed",
    "InvalidKey",
    "KeyNotFound",
    "NewKey",
    "PermissionDenied",
    "Principal",
    "Role",
    "authenticate",
    "bind_operator",
    "cli_principal",
    "create_key",
    "describe_caller",
    "hash_key",
    "key_operator",
    "list_keys",
    "revoke_key",
    "rotate_key",
]

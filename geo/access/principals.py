"""Who is calling: a key's role and borough, the command line, or the service itself, and what each may do."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Literal

from geo.core.errors import Forbidden, Unauthenticated

Role = Literal["admin", "borough", "operator"]
ROLES: tuple[Role, ...] = ("admin", "borough", "operator")


class AuthenticationFailed(Unauthenticated):
    """No valid key was sent where one is needed (401)."""


class PermissionDenied(Forbidden):
    """The key is valid but its role or borough does not allow this (403)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: a key's role and borough, or anonymous."""

    role: Role | None
    borough_code: str | None = None
    key_id: int | None = None
    label: str = "anonymous"

    @property
    def is_admin(self) -> bool:
        """Whether the caller is the GLA team."""
        return self.role == "admin"

    @property
    def name(self) -> str:
        """How this caller is recorded in history."""
        return f"key {self.key_id} ({self.label})" if self.key_id is not None else self.label

    def require_key(self) -> None:
        """Raise unless a valid key was sent."""
        if self.role is None:
            raise AuthenticationFailed("this needs an API key: send 'Authorization: Bearer <key>'")

    def require_role(self, *roles: Role) -> None:
        """Raise unless the caller has one of ``roles``."""
        self.require_key()
        if self.role not in roles:
            raise PermissionDenied(f"a {self.role} key cannot do this; it needs a {' or '.join(roles)} key")

    def require_borough_write(self, borough_code: str) -> None:
        """Raise unless the caller may write data of ``borough_code`` (admins: any; boroughs: their own)."""
        self.require_role("admin", "borough")
        if self.role == "borough" and self.borough_code != borough_code:
            raise PermissionDenied(
                f"this key belongs to borough {self.borough_code} and cannot write data of borough {borough_code}"
            )


ANONYMOUS = Principal(role=None)


def cli_principal() -> Principal:
    """The command line, as history and the audit trail name it: an admin, ``cli:<OS user>``."""
    import getpass

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return Principal(role="admin", label=f"cli:{user}")


#: Writes made by the service itself (migrations, retention purges started by the service).
SYSTEM = Principal(role="admin", label="system")

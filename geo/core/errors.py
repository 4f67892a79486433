"""The error base classes every domain error derives from.

A domain error is a mistake or a state the caller can act on, never a bug. Each derives from
one of the classes below, and the front ends map these classes, once each: ``api/errors.py``
to HTTP statuses, ``cli/common.py`` to exit codes. The message names what was wrong and
where (the parameter, field, file, row or value).

========================  ======  ====================================================
class                     status  meaning
========================  ======  ====================================================
InvalidParameter          400     a query or path parameter cannot be used
InvalidInput              422     a body, file or argument cannot be used
Unauthenticated           401     no valid key was sent where one is needed
Forbidden                 403     the key may not do this
NotFound                  404     no such object
Gone                      410     the object existed and was removed
Conflict                  409     the object's state does not allow this
PreconditionRequired      428     a version (``If-Match``) must be sent
TooLarge                  413     a body, file or result is over its limit
TooManyRequests           429     the caller has too much work under way
Unavailable               503     a part the service needs is not there
========================  ======  ====================================================
"""

from __future__ import annotations


class DomainError(Exception):
    """Base of every error the service reports to its caller."""


class InvalidInput(DomainError, ValueError):
    """A value of a body, a file or a command's argument cannot be used (422)."""


class InvalidParameter(InvalidInput):
    """A query or path parameter that cannot be used; the message names it and its value (400)."""


class Unauthenticated(DomainError):
    """No valid key was sent where one is needed (401)."""


class Forbidden(DomainError):
    """The key is valid but its role or borough does not allow this (403)."""


class NotFound(DomainError, LookupError):
    """There is no such object (404)."""


class Gone(NotFound):
    """The object existed and was removed (410)."""


class Conflict(DomainError):
    """The object's state or version does not allow this change (409)."""


class PreconditionRequired(DomainError):
    """The change needs the version it was based on (``If-Match``) (428)."""


class TooLarge(DomainError):
    """A body, a file or a result is over its limit (413)."""


class TooManyRequests(DomainError):
    """The caller already has as much work under way as it may (429)."""


class Unavailable(DomainError):
    """A part the service needs is not available here (503)."""

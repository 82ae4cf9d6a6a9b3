"""Who is asking: the identity the HTTP layer establishes for each request."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Identity:
    """An authenticated user, or the anonymous caller (``username is None``)."""

    username: str | None = None
    user_id: int | None = None
    groups: frozenset[str] = field(default_factory=frozenset)
    scopes: frozenset[str] = field(default_factory=frozenset)
    is_admin: bool = False
    method: str = "anonymous"  # "bearer", "basic", "anonymous"

    @property
    def anonymous(self) -> bool:
        return self.username is None

    @property
    def user_schema(self) -> str | None:
        """The caller's own schema (``user_<name>``), or None when anonymous."""
        return None if self.username is None else f"user_{self.username}"


ANONYMOUS = Identity()

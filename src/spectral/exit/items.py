"""The portability report's vocabulary: each item's plan, the facts of the target, the
report itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from spectral.exit.shims import Shim


class Plan(StrEnum):
    AVAILABLE = "available"    # the target has it (or it moves with the schemas)
    SHIM = "shim"              # created on the target first, documented in docs/provider-exit.md
    MAP = "map"                # replaced by its counterpart on the target (owners)
    LEAVE_OUT = "leave out"    # not moved; the consequence is named
    REFUSE = "refuse"          # no plan: the exit does not start


@dataclass
class Item:
    kind: str                  # managed object, role, extension, publication, feature, ...
    name: str
    plan: Plan
    action: str                # what the exit does
    used_by: list[str] = field(default_factory=list)
    consequence: str | None = None
    shim: Shim | None = None
    grant: tuple[str, str, bool] | None = None   # a membership: role, member, member inherits

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "plan": self.plan.value,
                "action": self.action, "used_by": self.used_by,
                "consequence": self.consequence}


@dataclass
class TargetFacts:
    """What the exit needs to know of the target (read with the target's own connection)."""

    server_version_num: int
    user: str
    can_create_roles: bool
    roles: set[str]
    extensions: dict[str, tuple[str | None, str | None, bool]]   # name: installed, default, trusted
    privileges: set[str]                                          # on tables, for its major
    functions: set[str]                                           # regprocedure texts it has
    superuser: bool = False       # only a superuser creates an extension that is not trusted

    @property
    def major(self) -> int:
        return self.server_version_num // 10000


@dataclass
class Report:
    schemas: tuple[str, ...]
    source_version_num: int
    source_owner: str
    target: TargetFacts | None
    items: list[Item]

    @property
    def carried(self) -> tuple[str, ...]:
        """Schemas moved along with the protected ones because they use them."""
        return tuple(i.name for i in self.items if i.kind.startswith("schema ")
                     and i.plan is Plan.AVAILABLE)

    @property
    def role_map(self) -> dict[str, str]:
        """Roles replaced by the target's user wherever they are named (owners)."""
        if self.target is None:
            return {}
        names = {n.strip() for i in self.items if i.kind == "owner" for n in i.name.split(",")}
        names |= {i.name for i in self.items if i.kind == "role" and i.plan is Plan.MAP}
        return {n: self.target.user for n in sorted(names) if n != self.target.user}

    @property
    def refusals(self) -> list[Item]:
        return [i for i in self.items if i.plan is Plan.REFUSE]

    def to_json(self) -> dict[str, Any]:
        return {"schemas": list(self.schemas), "source_major": self.source_version_num // 10000,
                "target_major": self.target.major if self.target else None,
                "target_user": self.target.user if self.target else None,
                "refusals": len(self.refusals), "items": [i.to_json() for i in self.items]}

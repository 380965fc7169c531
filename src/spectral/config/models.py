"""The configuration schema: the environments (each one provider's settings model, from the
registry) and the default. Every field has a description; invalid values are errors."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spectral.alerts.settings import AlertSettings
from spectral.config.base import (
    DEFAULT_RPO_SECONDS,
    DEFAULT_RTO_SECONDS,
    EnvironmentConfig,
    Posture,
    Seconds,
)
from spectral.config.environments import EMBEDDED, Environments

__all__ = ["DEFAULT_RPO_SECONDS", "DEFAULT_RTO_SECONDS", "EnvironmentConfig", "Posture",
           "Seconds", "SpectralConfig"]


class SpectralConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    default_environment: str | None = Field(
        default=None, description="Environment used when --env is not given; default 'local' "
                                  "when there is one, else the first environment in the file.")
    environments: Environments = Field(
        description="The environments, by name ([environments.<name>]); each is validated by "
                    "its provider's settings model when first used.")
    alerts: AlertSettings = Field(default_factory=AlertSettings,
                                  description="Webhooks told of failed, unverifiable and "
                                              "overdue drills and of recoveries ([alerts]).")
    runbook: Path | None = Field(
        default=None, description="The team's runbook file (TOML: posture texts, playbooks' "
                                  "manual steps, its tools' names; docs/runbook.md), relative "
                                  "to this file; default: runbook.toml beside it, if there is "
                                  "one, else neutral texts.")
    source: Path | None = Field(default=None, exclude=True,
                                description="The file this configuration was read from.")
    base_dir: Path = Field(default=Path("."), exclude=True,
                           description="Relative paths are resolved against this directory.")

    @model_validator(mode="after")
    def _default_exists(self) -> SpectralConfig:
        self.environments.source = self.source or EMBEDDED     # named in its problems
        if not self.environments:
            raise ValueError("no environments: add an [environments.<name>] table")
        if self.default_environment is None:
            first = "local" if "local" in self.environments else next(iter(self.environments))
            object.__setattr__(self, "default_environment", first)
        elif self.default_environment not in self.environments:
            raise ValueError(f"default_environment {self.default_environment!r} is not one of "
                             f"the environments ({', '.join(sorted(self.environments))})")
        return self

    @model_validator(mode="after")
    def _hooks_name_environments(self) -> SpectralConfig:
        for name, hook in self.alerts.webhooks.items():
            unknown = sorted(set(hook.environments) - set(self.environments))
            if unknown:
                raise ValueError(f"alerts.webhooks.{name}.environments: not environments of "
                                 f"this file: {', '.join(unknown)}")
        return self

    def environment(self, name: str | None) -> tuple[str, EnvironmentConfig]:
        from spectral.errors import ConfigError

        name = name or self.default_environment or "local"
        if name not in self.environments:
            where = self.source or EMBEDDED
            raise ConfigError(f"unknown environment {name!r} in {where}; known: "
                              f"{', '.join(sorted(self.environments))}")
        return name, self.environments[name]

    def state_dir(self, name: str) -> Path:
        env = self.environments[name]
        path = env.state_dir or Path(".spectral") / name
        return (path if path.is_absolute() else self.base_dir / path).resolve()

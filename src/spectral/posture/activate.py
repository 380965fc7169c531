"""`spectral dr activate-pitr`: the runbook's four activation steps. Steps 1 and 2 are checked,
not assumed; step 3 edits the configuration keeping its comments and layout; step 4 makes a
functional drill due within 30 days. The activation is a ledger entry."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomlkit

from spectral.confirm import AssumeNo, Operator
from spectral.durable import write_atomic
from spectral.environment import Environment
from spectral.errors import CheckFailed, ConfigError
from spectral.ledger.payloads import ActivationRecord, StepRecord
from spectral.providers.base import Report


@dataclass
class ActivationStep:
    number: int
    text: str
    done: bool
    evidence: str

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Activation:
    environment: str
    steps: list[ActivationStep] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all(s.done for s in self.steps)


def set_posture(path: Path, env_name: str, posture: str) -> None:
    """Change one key, keeping every comment and the layout of the rest of the file."""
    doc = tomlkit.parse(path.read_text())
    envs = doc.get("environments")
    if envs is None or env_name not in envs:
        raise ConfigError(f"{path}: no [environments.{env_name}] table to update")
    envs[env_name]["posture"] = posture
    write_atomic(path, tomlkit.dumps(doc))


def activate(environment: Environment, trigger: str, *, addon: str | None = None,
             operator: Operator | None = None,
             report: Report = lambda _m: None) -> Activation:
    """Check steps 1 and 2 against the provider, then record the new tier (step 3) and make a
    drill due (step 4); nothing is changed unless 1 and 2 hold."""
    cfg, name = environment.spectral, environment.name
    if cfg.source is None:
        raise ConfigError("there is no configuration file to record the new tier in",
                          hint="spectral init writes one")
    result = Activation(name)
    items = environment.provider.pitr_readiness(operator or AssumeNo(), report,
                                                {} if addon is None else {"addon": addon})
    result.steps += [ActivationStep(n, i.text, i.done, i.evidence)
                     for n, i in enumerate(items, start=1)]
    if not all(s.done for s in result.steps):
        missing = [s.text for s in result.steps if not s.done]
        raise CheckFailed(f"not activating {name}: {'; '.join(missing)} not in place "
                          f"({'; '.join(s.evidence for s in result.steps if not s.done)})")
    set_posture(cfg.source, name, "pitr")
    result.steps.append(ActivationStep(3, "posture updated to Post-PITR", True,
                                       f"{cfg.source}: environments.{name}.posture = \"pitr\""))
    result.steps.append(ActivationStep(4, "functional restore drill due within 30 days", True,
                                       "spectral dr status shows it"))
    done = ActivationRecord(f"PITR activated (trigger: {trigger})", trigger,
                            tuple(StepRecord(s.number, s.text, s.done, s.evidence)
                                  for s in result.steps))
    environment.ledger.record(name, done)
    return result

"""`[alerts]` in the configuration: named webhooks (`[alerts.webhooks.<name>]`), each a secret
reference to its URL (the URL carries the hook's token), a body format and the events it gets."""

from __future__ import annotations

from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spectral.config.secrets import reference_only


class AlertEvent(StrEnum):
    DRILL_FAILED = "drill_failed"            # a drill's outcome is FAIL
    DRILL_WARNED = "drill_warned"            # WARN: the copy matched, but the source's rows
    #                                          drifted past their bound or a collation differs
    COULD_NOT_VERIFY = "could_not_verify"    # a drill could not verify, a provider did not answer
    OVERDUE = "overdue"                      # an item of the cadence (or a backup) became overdue
    RECOVERED = "recovered"                  # what was alerted is right again
    TEST = "test"                            # `spectral dr alerts test`: sent to every hook


CHOOSABLE: tuple[AlertEvent, ...] = tuple(e for e in AlertEvent if e is not AlertEvent.TEST)


class Webhook(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = Field(description="The hook's URL as a secret reference (env:NAME or "
                                 "file:PATH): it carries the hook's token, so it is never "
                                 "printed, logged or recorded.")
    format: Literal["json", "slack"] = Field(
        default="json", description="'json': the event with the drill result's JSON (or the "
                                    "environment's status); 'slack': an incoming-webhook body "
                                    "({\"text\": ...}).")
    events: list[AlertEvent] = Field(
        default_factory=lambda: list(CHOOSABLE),
        description="The events sent to this hook: drill_failed, drill_warned, "
                    "could_not_verify, overdue, recovered (default: all).")
    environments: list[str] = Field(
        default_factory=list, description="Only these environments (default: every one).")

    @field_validator("events")
    @classmethod
    def _events(cls, value: list[AlertEvent]) -> list[AlertEvent]:
        if AlertEvent.TEST in value:
            raise ValueError("'test' is not an event to choose: `dr alerts test` reaches "
                             "every hook")
        return value

    @field_validator("url")
    @classmethod
    def _reference(cls, value: str) -> str:
        reference_only(value)
        return value

    def wants(self, event: AlertEvent, environment: str) -> bool:
        if event is AlertEvent.TEST:
            return True
        return event in self.events and (not self.environments
                                         or environment in self.environments)


class AlertSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    webhooks: dict[str, Webhook] = Field(
        default_factory=dict, description="The webhooks, by name ([alerts.webhooks.<name>]).")

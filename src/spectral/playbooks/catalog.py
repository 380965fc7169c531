"""The five restore playbooks, step by step for each posture tier. The automated steps are what
spectral does (plan.py runs each by its key); the manual steps are the team's: its runbook
file (spectral/runbook) words them and may add its own, and every text names the team's tools
as `{seed}`, `{application}`, ... (the neutral names without a file)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from spectral.config.models import Posture
from spectral.runbook.model import Runbook, fill


@dataclass(frozen=True)
class Step:
    key: str
    text: str
    automated: bool = False


@dataclass(frozen=True)
class Playbook:
    name: str
    title: str
    alpha: tuple[Step, ...]      # re-seed when the data can be generated again
    pitr: tuple[Step, ...]       # pro and pitr: a backup, or a point in time

    def steps(self, posture: Posture) -> tuple[Step, ...]:
        return self.alpha if posture is Posture.ALPHA else self.pitr

    def manual_keys(self) -> set[str]:
        return {s.key for s in (*self.alpha, *self.pitr) if not s.automated}


def _auto(key: str, text: str) -> Step:
    return Step(key, text, automated=True)


_RESEED = _auto("reseed", "Re-seed the protected schemas: reset, seed, author "
                          "(spectral db reseed)")
_VERIFY = _auto("verify", "Check the contract and the load-bearing tables' row counts")
_WAIT = Step("wait", "If the provider expects the region back within hours, wait for it")
_FAILOVER = _auto("failover", "Otherwise restore the newest backup into a new target "
                              "elsewhere")
_REPOINT = _auto("repoint", "Point {connection_settings} at the new target and run "
                            "{provision}")
_EXIT = _auto("exit", "Move the protected schemas into a PostgreSQL elsewhere "
                      "(spectral dr exit: portability, shims, copy, proof)")
_SIGN_IN = Step("sign-in", "The identities the old provider kept stay behind: users sign in "
                           "again through the new one")
_APP = Step("application", "Point {application} at the new host")
_ROTATE = Step("rotate", "Rotate the credential ({credential_rotation})")
_BLAST = _auto("blast-radius", "Work out what the credential could reach and since when "
                               "(spectral dr blast-radius)")
_RECORD = _auto("record", "Record the incident: this run is its ledger entry; file it in "
                          "{incident_log} too")
_CONTRACT = _auto("contract", "Check that every table of the contract is back with its "
                              "foreign keys (what depends on them fails closed otherwise)")

OUTLINES: tuple[Playbook, ...] = (
    Playbook(
        "self-inflicted", "Damage we did ourselves (a bad DELETE, UPDATE or migration)",
        alpha=(Step("regenerable", "Make sure the damaged data can be generated again from "
                                   "{seed}: no partner data among it"), _RESEED, _VERIFY),
        pitr=(_auto("find-damage", "Find the transaction that did the damage in the WAL "
                                   "(spectral dr find-damage)"),
              _auto("rewind", "Rewind in place to just before it, or salvage only the "
                              "damaged rows and keep the later writes (spectral dr salvage)"),
              _VERIFY)),
    Playbook(
        "regional-outage", "The provider's region is down",
        alpha=(_WAIT, _FAILOVER, _REPOINT),
        pitr=(_WAIT, _FAILOVER, _REPOINT,
              Step("announce", "Tell the partners who use {application} about the move; "
                               "invite them again"))),
    Playbook(
        "provider-failure", "The provider fails or goes away",
        alpha=(_EXIT, _SIGN_IN, _APP),
        pitr=(_EXIT, _SIGN_IN,
              _auto("reinvite", "Prepare the re-invite list from the moved tables"), _APP)),
    Playbook(
        "compromised-credential", "A credential with write access leaked",
        alpha=(_ROTATE, _BLAST, _auto("reseed", "Re-seed if what it could reach can be "
                                                "generated again (spectral db reseed)"),
               _RECORD),
        pitr=(_ROTATE, _BLAST,
              _auto("rewind", "Rewind in place to a moment before the credential was misused, "
                              "undoing its writes"), _RECORD)),
    Playbook(
        "schema-drop", "A schema dropped by mistake",
        alpha=(_RESEED, _CONTRACT),
        pitr=(_auto("rewind", "Rewind in place to just before the DROP"), _CONTRACT)),
)


def playbooks(book: Runbook) -> tuple[Playbook, ...]:
    """The playbooks in the team's words: its titles and manual steps, its tools' names."""
    return tuple(_worded(p, book) for p in OUTLINES)


def _worded(outline: Playbook, book: Runbook) -> Playbook:
    texts = book.playbooks.get(outline.name)
    tools = book.tool_names()
    manual = texts.manual if texts else {}
    then = tuple(Step(f"then-{i}", fill(t, tools))
                 for i, t in enumerate(texts.then if texts else [], start=1))

    def worded(step: Step) -> Step:
        text = step.text if step.automated else manual.get(step.key, step.text)
        return replace(step, text=fill(text, tools))

    title = texts.title if texts and texts.title else outline.title
    return Playbook(outline.name, fill(title, tools), (*map(worded, outline.alpha), *then),
                    (*map(worded, outline.pitr), *then))


def outline(name: str) -> Playbook:
    from spectral.errors import UsageError

    for p in OUTLINES:
        if p.name == name:
            return p
    raise UsageError(f"unknown playbook {name!r}; known: {', '.join(p.name for p in OUTLINES)}")


def playbook(name: str, book: Runbook) -> Playbook:
    return _worded(outline(name), book)

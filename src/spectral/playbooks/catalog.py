"""The restore playbooks as the runbook writes them, step by step, for each posture tier.
Used by the tabletop review today; `spectral dr playbook` will run them (issue 8)."""

from __future__ import annotations

from dataclasses import dataclass

from spectral.config.models import Posture


@dataclass(frozen=True)
class Step:
    text: str
    automated: bool = False


@dataclass(frozen=True)
class Playbook:
    name: str
    title: str
    alpha: tuple[Step, ...]      # pre-PITR: recovery is re-seed when the data is regenerable
    pitr: tuple[Step, ...]       # post-PITR (and Pro: most recent managed backup)

    def steps(self, posture: Posture) -> tuple[Step, ...]:
        return self.alpha if posture is Posture.ALPHA else self.pitr


PLAYBOOKS: tuple[Playbook, ...] = (
    Playbook(
        "self-inflicted", "Self-inflicted (accidental DELETE / bad migration)",
        alpha=(Step("Confirm the affected data is regenerable (no partner corpus present)"),
               Step("Re-seed: supabase db reset -> cold_start_seed.py -> the authoring harness "
                    "(spectral db reseed)", automated=True),
               Step("Verify schema + row counts", automated=True)),
        pitr=(Step("Find the damaging transaction and the target just before it "
                   "(spectral dr find-damage)", automated=True),
              Step("Point in Time: a timestamp just before the damage, in-place restore "
                   "(10-30 min), or salvage the rows without losing later writes",
                   automated=True),
              Step("Verify schema + row counts", automated=True))),
    Playbook(
        "regional-outage", "Regional outage (Supabase us-east-1 hard down)",
        alpha=(Step("Wait it out if it is expected to resolve within a few hours"),
               Step("If extended: re-seed into a fresh project in another region",
                    automated=True),
               Step("Update the Supabase URL/DSN op refs in infra/environments.toml "
                    "[production]; re-run tools/provision/provision.sh --env production; "
                    "redeploy")),
        pitr=(Step("Wait it out if it is expected to resolve within a few hours"),
              Step("If extended / business-critical: restore the most recent managed backup "
                   "to a fresh project in another region", automated=True),
              Step("Update the Supabase URL/DSN op refs in infra/environments.toml [production]; "
                   "re-run tools/provision/provision.sh --env production; redeploy",
                   automated=True),
              Step("Communicate the cutover to active partners; re-issue invites"))),
    Playbook(
        "provider-failure", "Provider failure / EOL",
        alpha=(Step("Re-seed into a managed Postgres elsewhere (Neon, Crunchy Bridge, Cloud SQL)",
                    automated=True),
               Step("auth.users does not transfer: users re-authenticate via the new provider"),
               Step("Point FastAPI at the new host")),
        pitr=(Step("Restore a Supabase backup into a managed Postgres elsewhere", automated=True),
              Step("auth.users does not transfer: users re-authenticate via the new provider"),
              Step("core.users repopulates from re-invite acceptance; re-issue domain_invites",
                   automated=True),
              Step("Point FastAPI at the new host; the ADR-039 auth abstraction keeps the "
                   "AuthContext shape"))),
    Playbook(
        "compromised-credential", "Compromised service-role credential",
        alpha=(Step("Rotate the credential per secrets-management.md"),
               Step("Determine the blast-radius window: when the credential was live, what it "
                    "could reach (spectral dr blast-radius)", automated=True),
               Step("Re-seed if the affected data is regenerable", automated=True),
               Step("Log the incident per the secrets-management runbook", automated=True)),
        pitr=(Step("Rotate the credential per secrets-management.md"),
              Step("Determine the blast-radius window: when the credential was live, what it "
                   "could reach (spectral dr blast-radius)", automated=True),
              Step("PITR to just before the suspected compromise to undo unauthorized writes",
                   automated=True),
              Step("Log the incident per the secrets-management runbook", automated=True))),
    Playbook(
        "schema-drop", "Accidental schema drop",
        alpha=(Step("Re-seed", automated=True),
               Step("Verify the shared core.* tables are intact (worlds and platform fail "
                    "closed on missing core contracts)", automated=True)),
        pitr=(Step("PITR to just before the drop", automated=True),
              Step("Verify the shared core.* tables are intact (worlds and platform fail "
                   "closed on missing core contracts)", automated=True))),
)


def playbook(name: str) -> Playbook:
    from spectral.errors import UsageError

    for p in PLAYBOOKS:
        if p.name == name:
            return p
    raise UsageError(f"unknown playbook {name!r}; known: {', '.join(p.name for p in PLAYBOOKS)}")

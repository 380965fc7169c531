"""pg_verifybackup's errors sorted into damage a backup is proven to have (a file whose
checksum or size does not match the manifest, a file missing or extra, a manifest that does
not match its own checksum) and everything else (a file it could not open, pg_waldump that
would not run: the backup could not be read, which proves nothing about it). The messages
are pg_verifybackup.c's (PostgreSQL 13-18; the tar forms of 18 name the archive too)."""

from __future__ import annotations

import re

DAMAGE_RES = (
    re.compile(r'checksum mismatch for file "[^"]+"(?: in "[^"]+")?'),
    re.compile(r'file "[^"]+"(?: in "[^"]+")? has checksum of length \d+, but expected \d+'),
    re.compile(r'"[^"]+" is present (?:on disk but not in the manifest|in the manifest but '
               r'not on disk)'),
    re.compile(r'"[^"]+"(?: in "[^"]+")? has size \d+ (?:on disk|in "[^"]+") but size \d+ in '
               r'the manifest'),
    re.compile(r'"[^"]+" has size \d+ on disk but size \d+ in the manifest'),
    re.compile(r'manifest checksum mismatch'),
    re.compile(r'manifest system identifier is \d+, but (?:control file|database system '
               r'identifier) (?:has|is) \d+'),
)


def damage(stderr: str) -> list[str]:
    """The damage pg_verifybackup's stderr proves, one entry per finding, in its order;
    empty when it failed for another reason (then the backup could not be verified)."""
    found = []
    for line in stderr.splitlines():
        for pattern in DAMAGE_RES:
            if m := pattern.search(line):
                found.append(m.group(0))
                break
    return found

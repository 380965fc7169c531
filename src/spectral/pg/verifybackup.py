"""pg_verifybackup's errors sorted into damage a backup is proven to have (a file whose
checksum or size does not match the manifest, a file missing or extra, a manifest that does
not match its own checksum) and everything else (a file it could not open, pg_waldump that
would not run: the backup could not be read, which proves nothing about it). The messages
are pg_verifybackup.c's (PostgreSQL 13-18; the tar forms of 18 name the archive too).
And one pg_verifybackup split into several run side by side (`split_argvs`)."""

from __future__ import annotations

import re
from typing import Any

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


# Room for the --ignore arguments of one share (Linux allows 2 MB of arguments in all): past
# it, one pg_verifybackup checks everything.
MAX_IGNORED_CHARS = 256 * 1024


def shares(files: list[tuple[str, int]], parts: int) -> list[list[str]]:
    """The manifest's files (path, size) dealt into `parts` shares of about equal bytes: the
    largest first, each to the share that holds the fewest bytes so far."""
    held = [0] * parts
    dealt: list[list[str]] = [[] for _ in range(parts)]
    for path, size in sorted(files, key=lambda f: -f[1]):
        i = held.index(min(held))
        held[i] += size
        dealt[i].append(path)
    return [paths for paths in dealt if paths]


def split_argvs(argv: list[str], files: list[tuple[str, int]] | None, parts: int
                ) -> list[list[str]]:
    """One pg_verifybackup (`argv`, the backup's folder last) as up to `parts` programs run side
    by side, each checking one share of the files and ignoring (--ignore) those of the others;
    only the first parses the WAL. Together they check exactly what the one does: every file
    the manifest lists by one of them (on disk, its size, its checksum), a file on disk that
    it does not list by all (it is in no share), the manifest's own checksum by all.
    `files` None (a path the manifest had to hex-encode), one part or too many files: `argv`."""
    if files is None or parts < 2:
        return [argv]
    dealt = shares(files, parts)
    if len(dealt) < 2 or sum(len(p) + 10 for p, _ in files) > MAX_IGNORED_CHARS:
        return [argv]
    out = []
    for i in range(len(dealt)):
        others = [f"--ignore={p}" for k, share in enumerate(dealt) if k != i for p in share]
        no_wal = [] if i == 0 or "--no-parse-wal" in argv else ["--no-parse-wal"]
        out.append([*argv[:-1], *no_wal, *others, argv[-1]])
    return out


def manifest_files(manifest: dict[str, Any]) -> list[tuple[str, int]] | None:
    """(path, size) of every file backup_manifest lists; None when one's path is hex-encoded
    (not UTF-8: not one --ignore can name)."""
    files = manifest.get("Files", [])
    if any("Path" not in f for f in files):
        return None
    return [(f["Path"], int(f["Size"])) for f in files]

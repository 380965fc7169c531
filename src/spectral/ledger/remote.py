"""Where the ledger lives beyond this machine: a git repository or an S3-compatible bucket. The
evidence folder stays the working copy (the file ledger, its head, the snapshots); a remote
brings it up to date before every read and append, and publishes every append.

- git: entries are appended to the tracked `ledger.jsonl` and committed; pushed when a remote
  is configured. A push rejected because another job appended first is resolved by fetching
  and appending again on the new head: never a force-push, never a rewritten commit.
- S3: one object per entry (`entries/<seq>.json`), created with `If-None-Match: *`, so of two
  writers racing for the same sequence number exactly one wins; the other reads the new head
  and appends after it. Snapshots are objects next to them.

Both remember what they last saw (in the evidence folder, untracked) and refuse to go on when the
store went backwards: a force-pushed branch, an entry object removed or overwritten. A fresh
reader has seen nothing: a bucket with versioning shows it every entry object deleted or written
twice; for a git store only the server can refuse a force-push (docs/scheduling.md), and `dr log
verify` says when the newest entry is older than the cadence allows."""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from spectral.errors import CouldNotVerify, UsageError
from spectral.runner import run

ENTRY_FILES = ("ledger.jsonl", "ledger.head")


class StoreWentBack(CouldNotVerify):
    """The shared store lost history this reader had already seen."""


class Remote(Protocol):
    def describe(self) -> str: ...

    def pull(self, folder: Path) -> None:
        """Make `folder` the store's current state (its ledger, head and snapshots)."""
        ...

    def publish(self, folder: Path, seq: int, line: str) -> bool:
        """Publish entry `seq` (already appended in `folder`) and any new snapshot; False when
        another writer published `seq` first (the caller pulls and appends again)."""
        ...


# ---- git ------------------------------------------------------------------------------------
class GitRemote:
    def __init__(self, url: str | None, branch: str = "main", author: str = "spectral") -> None:
        self.url, self.branch, self.author = url, branch, author

    def describe(self) -> str:
        return f"git ({'remote ' + _safe(self.url) if self.url else 'local repository'})"

    def _env(self) -> dict[str, str]:
        # the remote's URL may carry a token: given through the environment, never argv or disk
        env = {"GIT_TERMINAL_PROMPT": "0", "GIT_AUTHOR_NAME": self.author,
               "GIT_AUTHOR_EMAIL": f"{self.author}@localhost", "GIT_COMMITTER_NAME":
               self.author, "GIT_COMMITTER_EMAIL": f"{self.author}@localhost"}
        if self.url:
            env.update({"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "remote.origin.url",
                        "GIT_CONFIG_VALUE_0": self.url})
        return env

    def git(self, folder: Path, *args: str, check: bool = True) -> Any:
        if shutil.which("git") is None:
            raise UsageError("the git evidence store needs git on the PATH")
        return run(["git", "-C", str(folder), *args], timeout=300, check=check,
                   env=self._env())

    def _init(self, folder: Path) -> None:
        if (folder / ".git").exists():
            return
        folder.mkdir(parents=True, exist_ok=True)
        self.git(folder, "init", "-q", "-b", self.branch)
        if self.url:
            # an entry for the remote, its URL only in the environment (see _env)
            self.git(folder, "config", "remote.origin.fetch",
                     "+refs/heads/*:refs/remotes/origin/*")
        (folder / ".gitignore").write_text(".seen\n.seen.tmp\nledger.lock\n.ledger.*\n")

    def _remote_head(self, folder: Path) -> str | None:
        if not self.url:
            return None
        res = self.git(folder, "fetch", "-q", "origin", check=False)
        if res.returncode != 0:
            last = res.stderr.strip().splitlines()[-1] if res.stderr.strip() else "failed"
            raise CouldNotVerify(f"cannot fetch the evidence repository: {_safe(last)}")
        found = self.git(folder, "rev-parse", "-q", "--verify",
                         f"refs/remotes/origin/{self.branch}", check=False)
        return found.stdout.strip() or None

    def pull(self, folder: Path) -> None:
        self._init(folder)
        head = self._remote_head(folder)
        if head is None:
            return
        seen = _read_seen(folder).get("commit")
        if seen and self.git(folder, "merge-base", "--is-ancestor", seen, head,
                             check=False).returncode != 0:
            raise StoreWentBack(f"the evidence repository went backwards: commit {seen[:12]}, "
                                f"seen before, is no longer in {self.branch} (a force-push?)")
        # move to the remote's head, keep files of ours not in it (a snapshot being recorded)
        self.git(folder, "reset", "-q", "--mixed", head)
        self.git(folder, "checkout", "-q", head, "--", ".")
        _write_seen(folder, {"commit": head})

    def publish(self, folder: Path, seq: int, line: str) -> bool:
        _keep_local(folder)
        self.git(folder, "add", "-A")
        self.git(folder, "commit", "-q", "-m", f"ledger entry {seq}")
        if not self.url:
            _write_seen(folder, {"commit": self.git(folder, "rev-parse", "HEAD").stdout.strip()})
            return True
        res = self.git(folder, "push", "-q", "origin", f"HEAD:refs/heads/{self.branch}",
                       check=False)
        if res.returncode == 0:
            _write_seen(folder, {"commit": self.git(folder, "rev-parse", "HEAD").stdout.strip()})
            return True
        if "rejected" in res.stderr or "fetch first" in res.stderr or \
                "non-fast-forward" in res.stderr:
            return False
        raise CouldNotVerify(f"cannot push the evidence repository: "
                             f"{_safe(res.stderr.strip().splitlines()[-1] if res.stderr else '')}")


# ---- S3 -------------------------------------------------------------------------------------
class S3Remote:
    def __init__(self, client: Any, bucket: str, prefix: str, endpoint: str) -> None:
        self.s3, self.bucket, self.prefix, self.endpoint = client, bucket, prefix.strip("/"), \
            endpoint
        self._versioning: bool | None = None

    def describe(self) -> str:
        return f"s3 (bucket {self.bucket}, prefix {self.prefix or '/'} at {self.endpoint})"

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def _list(self, sub: str) -> dict[str, str]:
        """key -> ETag under prefix/sub/."""
        out: dict[str, str] = {}
        token: str | None = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": self._key(sub) + "/"}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call(functools.partial(self.s3.list_objects_v2, **kwargs))
            for obj in page.get("Contents", []):
                out[obj["Key"]] = str(obj["ETag"]).strip('"')
            if not page.get("IsTruncated"):
                return out
            token = page.get("NextContinuationToken")

    def _call(self, fn: Callable[[], Any]) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn()
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise CouldNotVerify(f"the evidence bucket {self.bucket} answered {code}: "
                                 f"{exc.response.get('Error', {}).get('Message', '')}") from None
        except BotoCoreError as exc:
            raise CouldNotVerify(f"the evidence bucket {self.bucket} is unreachable: "
                                 f"{type(exc).__name__}") from None

    def _get(self, key: str) -> bytes:
        body = self._call(functools.partial(self.s3.get_object, Bucket=self.bucket,
                                            Key=key))["Body"]
        data: bytes = body.read()
        return data

    def _versioned(self) -> bool:
        """Whether the bucket keeps object versions (then a fresh reader can see history)."""
        from botocore.exceptions import BotoCoreError, ClientError

        if self._versioning is None:
            try:
                answer = self.s3.get_bucket_versioning(Bucket=self.bucket)
                self._versioning = answer.get("Status") in ("Enabled", "Suspended")
            except (ClientError, BotoCoreError):     # not allowed to ask: no history to read
                self._versioning = False
        return self._versioning

    def _rewritten(self) -> list[str]:
        """With versioning: every entry object deleted or written more than once. An entry
        is created once (If-None-Match), so either is someone rewriting the ledger."""
        kinds: dict[str, list[str]] = {}       # key -> "version" | "deleted", newest first
        marker: dict[str, Any] = {}
        while True:
            page = self._call(functools.partial(
                self.s3.list_object_versions, Bucket=self.bucket,
                Prefix=self._key("entries") + "/", **marker))
            for kind, items in (("version", page.get("Versions", [])),
                                ("deleted", page.get("DeleteMarkers", []))):
                for item in items:
                    found = kinds.setdefault(item["Key"], [])
                    found.insert(0 if item.get("IsLatest") else len(found), kind)
            if not page.get("IsTruncated"):
                break
            marker = {"KeyMarker": page.get("NextKeyMarker"),
                      "VersionIdMarker": page.get("NextVersionIdMarker")}
        out = []
        for key in sorted(kinds):
            name = _object_name(key).split(".", 1)[0]
            entry = f"entry {int(name)}" if name.isdigit() else f"object {name}"
            if kinds[key][0] == "deleted":
                out.append(f"{entry} was deleted")
            elif len(kinds[key]) > 1:
                out.append(f"{entry} was overwritten ({kinds[key].count('version')} versions)")
        return out

    def pull(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        rewritten = self._rewritten() if self._versioned() else []
        if rewritten:
            raise StoreWentBack(f"the evidence bucket keeps object versions, and they show "
                                f"the ledger rewritten: {', '.join(rewritten[:10])}"
                                + (f" and {len(rewritten) - 10} more" if len(rewritten) > 10
                                   else ""))
        entries = self._list("entries")
        seen: dict[str, str] = _read_seen(folder).get("etags", {})
        gone = [k for k in seen if k not in entries]
        changed = [k for k, etag in seen.items() if k in entries and entries[k] != etag]
        if gone or changed:
            what = (f"entry object {(gone or changed)[0].rsplit('/', 1)[-1]} was "
                    f"{'removed' if gone else 'overwritten'}")
            raise StoreWentBack(f"the evidence bucket went backwards: {what}")
        cache = folder / ".entries"
        cache.mkdir(exist_ok=True)
        lines = []
        for key in sorted(entries):
            local = cache / _object_name(key)
            if not local.exists() or seen.get(key) != entries[key]:
                local.write_bytes(self._get(key))
            lines.append(local.read_text().strip())
        body = "".join(line + "\n" for line in lines)
        (folder / "ledger.jsonl").write_text(body)
        if lines:
            last = json.loads(lines[-1])
            (folder / "ledger.head").write_text(json.dumps({"seq": last["seq"],
                                                            "hash": last["hash"]}) + "\n")
        else:
            (folder / "ledger.head").unlink(missing_ok=True)
        snapshots = folder / "snapshots"
        for key in self._list("snapshots"):
            local = snapshots / _object_name(key)
            if not local.exists():
                snapshots.mkdir(exist_ok=True)
                local.write_bytes(self._get(key))
        _write_seen(folder, {"etags": entries})

    def publish(self, folder: Path, seq: int, line: str) -> bool:
        from botocore.exceptions import ClientError

        remote = set(self._list("snapshots"))
        for path in sorted((folder / "snapshots").glob("*.json")):
            key = self._key("snapshots", path.name)
            if key not in remote:        # before the entry that names it
                self._call(functools.partial(self.s3.put_object, Bucket=self.bucket, Key=key,
                                             Body=path.read_bytes()))
        key = self._key("entries", f"{seq:012d}.json")
        try:
            answer = self.s3.put_object(Bucket=self.bucket, Key=key, Body=line.encode(),
                                        IfNoneMatch="*")
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed",
                                                               "ConditionalRequestConflict",
                                                               "412", "409"):
                return False
            raise CouldNotVerify(f"the evidence bucket {self.bucket} refused entry {seq}: "
                                 f"{exc.response.get('Error', {}).get('Code')}") from None
        seen = _read_seen(folder)
        etags = dict(seen.get("etags", {}))
        etags[key] = str(answer.get("ETag", "")).strip('"')
        (folder / ".entries").mkdir(exist_ok=True)
        (folder / ".entries" / f"{seq:012d}.json").write_text(line + "\n")
        _write_seen(folder, {"etags": etags})
        return True


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*\.json")


def _object_name(key: str) -> str:
    """The file an object becomes in the evidence folder: its last key component, and only a
    plain file name (a key ending in `..` or `.hidden` is refused, never followed)."""
    name = key.rsplit("/", 1)[-1]
    if not _NAME.fullmatch(name):
        raise CouldNotVerify(f"the evidence store holds an object named {name!r}, which is not "
                             f"one spectral writes; refusing to read it")
    return name


def _safe(text: str | None) -> str:
    """A URL or message without credentials (user:password@ or a token in it)."""
    return re.sub(r"//[^/@\s]+@", "//***@", text or "")


def _read_seen(folder: Path) -> dict[str, Any]:
    try:
        data = json.loads((folder / ".seen").read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _write_seen(folder: Path, data: dict[str, Any]) -> None:
    path = folder / ".seen"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data))
    os.replace(tmp, path)


# files of the evidence folder that never leave the machine: an exit's re-invite list holds
# the users' e-mails (personal data); the ledger entry names it, the store does not carry it
LOCAL_ONLY = ("reinvites-*",)


def _keep_local(folder: Path) -> None:
    exclude = folder / ".git" / "info" / "exclude"
    have = exclude.read_text().splitlines() if exclude.exists() else []
    missing = [p for p in LOCAL_ONLY if p not in have]
    if missing:
        exclude.parent.mkdir(parents=True, exist_ok=True)
        exclude.write_text("\n".join([*have, *missing]) + "\n")

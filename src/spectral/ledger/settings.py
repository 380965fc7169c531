"""Where an environment's evidence lives ([environments.<name>.evidence]): one settings model per
store, each opening its own remote, and STORES, the one place that maps a `store` name to its
model. A new store is a model here (or in its own module) and one line in STORES."""

from __future__ import annotations

import base64
import binascii
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from spectral.config.secrets import is_secret_ref, reference_only, resolve_secret
from spectral.errors import ConfigError
from spectral.redact import register_secret

if TYPE_CHECKING:
    from spectral.ledger.remote import Remote


class EvidenceSettings(BaseModel):
    """Keys every store takes: the signing key and the trusted public keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    store: str = Field(description="'file' (the state directory, the default), 'git' or 's3'.")
    signing_key: str | None = Field(default=None, description="An Ed25519 private key (PEM "
                                    "or base64 of its 32 bytes) as a secret reference: every "
                                    "append is signed.")
    public_keys: list[str] = Field(default_factory=list, description="Trusted Ed25519 public "
                                   "keys (base64 of 32 bytes): `dr log verify` requires every "
                                   "entry from the first key introduction on to be signed.")

    @field_validator("signing_key")
    @classmethod
    def _signing_key(cls, value: str | None) -> str | None:
        return reference_only(value)

    @field_validator("public_keys")
    @classmethod
    def _keys(cls, value: list[str]) -> list[str]:
        for key in value:
            try:
                if len(base64.b64decode(key, validate=True)) != 32:
                    raise ValueError
            except (ValueError, binascii.Error):
                raise ValueError(f"not an Ed25519 public key (base64 of 32 bytes): "
                                 f"{key[:12]}...") from None
        return value

    def remote(self, base_dir: Path) -> Remote | None:
        """Where appends are pushed beside the evidence folder; None keeps them only there."""
        return None


class FileEvidence(EvidenceSettings):
    store: Literal["file"] = Field(default="file", description="'file': the state directory "
                                   "only (the default).")


class GitEvidence(EvidenceSettings):
    store: Literal["git"] = Field(description="'git': a git repository.")
    remote_url: str | None = Field(default=None, alias="remote", description="The remote to "
                                   "push to (a path or URL; a secret reference when it carries "
                                   "a token). Without one, a local repository.")
    branch: str = Field(default="main", description="The branch the ledger is on.")

    def remote(self, base_dir: Path) -> Remote | None:
        from spectral.ledger.remote import GitRemote

        url = self.remote_url
        if url is not None and is_secret_ref(url):
            url = secret(url, base_dir)
        elif url is not None and "://" not in url and not url.startswith("/"):
            url = str((base_dir / url).resolve())
        return GitRemote(url, self.branch)


class S3Evidence(EvidenceSettings):
    store: Literal["s3"] = Field(description="'s3': an S3 bucket.")
    endpoint: str | None = Field(default=None, description="The endpoint URL (default: AWS).")
    bucket: str = Field(description="The bucket.")
    prefix: str = Field(default="", description="The key prefix, e.g. 'spectral/production'.")
    region: str = Field(default="us-east-1", description="The region.")
    path_style: bool = Field(default=False, description="Path-style addressing (most "
                             "S3-compatible servers).")
    access_key_id: str = Field(description="Key id, a secret reference.")
    secret_access_key: str = Field(description="Secret, a secret reference.")
    verify_tls: bool = Field(default=True, description="Verify the endpoint's TLS certificate "
                             "(off only for a test endpoint).")

    @field_validator("access_key_id", "secret_access_key")
    @classmethod
    def _secrets(cls, value: str) -> str:
        reference_only(value)
        return value

    def remote(self, base_dir: Path) -> Remote | None:
        from spectral.ledger.remote import S3Remote

        return S3Remote(self._client(base_dir), self.bucket, self.prefix,
                        self.endpoint or "AWS")

    def _client(self, base_dir: Path) -> Any:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:
            raise ConfigError("the s3 evidence store needs boto3, which is not installed",
                              hint="pip install 'spectral-dr[s3]' (or boto3)") from None
        if not self.verify_tls:      # asked for in the configuration: no warning per request
            import urllib3

            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
        return boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=self.region,
            aws_access_key_id=secret(self.access_key_id, base_dir),
            aws_secret_access_key=secret(self.secret_access_key, base_dir),
            verify=self.verify_tls,
            config=Config(s3={"addressing_style": "path" if self.path_style else "auto"},
                          retries={"max_attempts": 5, "mode": "standard"},
                          connect_timeout=10, read_timeout=60))


# The one list of evidence stores: `store` name -> its settings model.
STORES: dict[str, type[EvidenceSettings]] = {
    "file": FileEvidence,
    "git": GitEvidence,
    "s3": S3Evidence,
}


def secret(ref: str, base_dir: Path) -> str:
    """A secret the store uses, masked everywhere (a PEM key line by line too)."""
    value = resolve_secret(ref, base_dir=base_dir)
    register_secret(value)
    for line in value.splitlines():
        if len(line.strip()) > 8 and not line.startswith("-----"):
            register_secret(line.strip())
    return value


def _store_of(value: Any) -> str:
    """The table's store; a table without one is the file store (the default)."""
    if isinstance(value, dict):
        return str(value.get("store", "file"))
    return str(getattr(value, "store", "file"))


if TYPE_CHECKING:
    AnyEvidence = EvidenceSettings
else:
    AnyEvidence = Annotated[
        Union[tuple(Annotated[model, Tag(name)] for name, model in STORES.items())],  # noqa: UP007
        Discriminator(_store_of, custom_error_type="unknown_kind",
                      custom_error_message="store: expected one of "
                                           + ", ".join(map(repr, STORES)))]

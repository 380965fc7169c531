"""Where an environment's evidence lives ([environments.<name>.evidence]): the ledger, its
snapshots and its signatures."""

from __future__ import annotations

import base64
import binascii
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spectral.config.secrets import reference_only


class StoreKind(StrEnum):
    FILE = "file"
    GIT = "git"
    S3 = "s3"


class EvidenceConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    store: StoreKind = Field(default=StoreKind.FILE, description="'file' (the state "
                             "directory, the default), 'git' or 's3'.")
    remote: str | None = Field(default=None, description="git: the remote to push to (a path "
                               "or URL; a secret reference when it carries a token). Without "
                               "one, a local repository.")
    branch: str = Field(default="main", description="git: the branch the ledger is on.")
    endpoint: str | None = Field(default=None, description="s3: the endpoint URL (default: "
                                 "AWS).")
    bucket: str | None = Field(default=None, description="s3: the bucket.")
    prefix: str = Field(default="", description="s3: the key prefix, e.g. "
                        "'spectral/production'.")
    region: str = Field(default="us-east-1", description="s3: the region.")
    path_style: bool = Field(default=False, description="s3: path-style addressing (most "
                             "S3-compatible servers).")
    access_key_id: str | None = Field(default=None, description="s3: key id, a secret "
                                      "reference.")
    secret_access_key: str | None = Field(default=None, description="s3: secret, a secret "
                                          "reference.")
    verify_tls: bool = Field(default=True, description="s3: verify the endpoint's TLS "
                             "certificate (off only for a test endpoint).")
    signing_key: str | None = Field(default=None, description="An Ed25519 private key (PEM "
                                    "or base64 of its 32 bytes) as a secret reference: every "
                                    "append is signed.")
    public_keys: list[str] = Field(default_factory=list, description="Trusted Ed25519 public "
                                   "keys (base64 of 32 bytes): `dr log verify` requires every "
                                   "entry from the first key introduction on to be signed.")

    @field_validator("access_key_id", "secret_access_key", "signing_key")
    @classmethod
    def _secrets(cls, value: str | None) -> str | None:
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

    @model_validator(mode="after")
    def _complete(self) -> EvidenceConfig:
        if self.store is StoreKind.S3:
            missing = [k for k in ("bucket", "access_key_id", "secret_access_key")
                       if getattr(self, k) is None]
            if missing:
                raise ValueError(f"an s3 evidence store needs {', '.join(missing)}")
        return self

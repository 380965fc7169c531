"""The ledger of an environment, in the store its configuration names, signing when a key is
configured."""

from __future__ import annotations

from typing import Any

from spectral.config.evidence import EvidenceConfig, StoreKind
from spectral.config.models import SpectralConfig
from spectral.config.secrets import is_secret_ref, resolve_secret
from spectral.errors import ConfigError
from spectral.ledger.remote import GitRemote, Remote, S3Remote
from spectral.ledger.signing import Signer, load_private
from spectral.ledger.store import Ledger
from spectral.redact import register_secret


def open_ledger(cfg: SpectralConfig, name: str) -> Ledger:
    env = cfg.environments[name]
    evidence = env.evidence
    signer = None
    if evidence.signing_key:
        text = _secret(cfg, evidence.signing_key)
        signer = Signer(load_private(text))
    return Ledger(cfg.state_dir(name) / "evidence", _remote(cfg, evidence), signer,
                  tuple(evidence.public_keys))


def _secret(cfg: SpectralConfig, ref: str) -> str:
    value = resolve_secret(ref, base_dir=cfg.base_dir)
    register_secret(value)
    for line in value.splitlines():          # a PEM key: each line masked too
        if len(line.strip()) > 8 and not line.startswith("-----"):
            register_secret(line.strip())
    return value


def _remote(cfg: SpectralConfig, evidence: EvidenceConfig) -> Remote | None:
    if evidence.store is StoreKind.GIT:
        url = evidence.remote
        if url is not None and is_secret_ref(url):
            url = _secret(cfg, url)
        elif url is not None and "://" not in url and not url.startswith("/"):
            url = str((cfg.base_dir / url).resolve())
        return GitRemote(url, evidence.branch)
    if evidence.store is StoreKind.S3:
        return S3Remote(_s3_client(cfg, evidence), str(evidence.bucket), evidence.prefix,
                        evidence.endpoint or "AWS")
    return None


def _s3_client(cfg: SpectralConfig, evidence: EvidenceConfig) -> Any:
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ConfigError("the s3 evidence store needs boto3, which is not installed",
                          hint="pip install 'spectral-dr[s3]' (or boto3)") from None

    assert evidence.access_key_id and evidence.secret_access_key
    if not evidence.verify_tls:      # asked for in the configuration: no warning per request
        import urllib3

        urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
    return boto3.client(
        "s3", endpoint_url=evidence.endpoint, region_name=evidence.region,
        aws_access_key_id=_secret(cfg, evidence.access_key_id),
        aws_secret_access_key=_secret(cfg, evidence.secret_access_key),
        verify=evidence.verify_tls,
        config=Config(s3={"addressing_style": "path" if evidence.path_style else "auto"},
                      retries={"max_attempts": 5, "mode": "standard"},
                      connect_timeout=10, read_timeout=60))

"""Who may do what in the object store: serving reads the registry, appends to the
log streams and writes batch predictions (under `batch/`); training reads and writes
everything in the bucket. `grant` makes both MinIO users with those policies
(idempotent), so that no pod holds the root credentials. The policies are pure data;
only `grant` talks to MinIO."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["BATCH", "LOGS", "ROLES", "Credentials", "grant", "policy"]

ROLES = ("serving", "training")
LOGS = "logs"  # the log streams' prefix, where serving may add objects
BATCH = "batch"  # batch jobs' input and output, where serving may add and remove them


@dataclass(frozen=True)
class Credentials:
    access_key: str
    secret_key: str


def policy(role: str, bucket: str) -> dict[str, Any]:
    """The IAM policy of `role` on `bucket`."""
    bucket_arn, objects = f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"
    listing = {
        "Effect": "Allow",
        "Action": ["s3:ListBucket", "s3:GetBucketLocation"],
        "Resource": [bucket_arn],
    }
    if role == "serving":
        statements = [
            listing,
            {"Effect": "Allow", "Action": ["s3:GetObject"], "Resource": [objects]},
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/{LOGS}/*"],
            },
            {
                "Effect": "Allow",
                "Action": ["s3:PutObject", "s3:DeleteObject"],
                "Resource": [f"arn:aws:s3:::{bucket}/{BATCH}/*"],
            },
        ]
    elif role == "training":
        statements = [
            listing,
            {
                "Effect": "Allow",
                "Action": ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
                "Resource": [objects],
            },
        ]
    else:
        raise ValueError(f"no role {role!r}; roles are {', '.join(ROLES)}")
    return {"Version": "2012-10-17", "Statement": statements}


def grant(
    endpoint: str,
    root: Credentials,
    bucket: str,
    users: dict[str, Credentials],
    *,
    secure: bool = False,
) -> list[str]:
    """Create `bucket` if missing, then for each role its policy
    (`mlpatterns-<role>`), its user, and the policy attached to the user; returns the
    users made or updated. Running it again changes nothing but the passwords given."""
    from minio import Minio
    from minio.credentials.providers import StaticProvider
    from minio.minioadmin import MinioAdmin

    client = Minio(endpoint, root.access_key, root.secret_key, secure=secure)
    if not client.bucket_exists(bucket):
        client.make_bucket(bucket)
    admin = MinioAdmin(
        endpoint=endpoint,
        credentials=StaticProvider(root.access_key, root.secret_key),
        secure=secure,
    )
    done = []
    for role, credentials in users.items():
        name = f"mlpatterns-{role}"
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "policy.json"
            path.write_text(json.dumps(policy(role, bucket)))
            admin.policy_add(name, str(path))
        admin.user_add(credentials.access_key, credentials.secret_key)
        attached = json.loads(admin.user_info(credentials.access_key)).get("policyName", "")
        if name not in attached.split(","):
            admin.attach_policy([name], user=credentials.access_key)
        done.append(credentials.access_key)
    return done

"""The S3 store: blobs and caches in an S3 bucket (AWS S3 or an
S3-compatible server: MinIO, SeaweedFS, Ceph RGW, Cloudflare R2...), via
boto3.

Keys mirror the folder layout under the URL's prefix:
``<prefix>/blobs/<sha[:2]>/<sha><suffix>`` and ``<prefix>/c2pa-cache/<name>``.

Written once. A blob is put with ``If-None-Match: *`` (Amazon S3 User
Guide, "Add preconditions to S3 operations with conditional requests",
https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html;
API reference PutObject: the server answers 412 Precondition Failed when
the key exists, 409 ConditionalRequestConflict when a concurrent write of
the same key won). A server that answers 501 Not Implemented to that header
gets HEAD-then-PUT instead; a server that ignores it overwrites the object
with the same bytes. Both are harmless: the key is the sha256 of the
content, so any write of a key writes the same bytes.

Age. ``retouch gc`` spares objects younger than its grace period, by
``LastModified``. When a put finds its blob already stored (an image used
again), the object is copied onto itself with ``MetadataDirective=REPLACE``
(API reference CopyObject,
https://docs.aws.amazon.com/AmazonS3/latest/API/API_CopyObject.html: a copy
of an object onto itself must change its metadata, storage class or
encryption), which gives it a new ``LastModified``, as the folder store
refreshes a file's mtime.

boto3 clients are thread-safe (boto3 guide, "Clients", "Multithreading or
multiprocessing with clients"); one client serves the process.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from typing import BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from app.storage.base import SHARD_RE, Entry, StorageError, Store, blob_name

log = logging.getLogger("retouch")

_MEDIA_TYPES = {".png": "image/png", ".webp": "image/webp"}
#: Connections boto3 keeps to the server (its default is 10): image
#: requests run in the app's thread pool, 40 threads by default.
MAX_POOL_CONNECTIONS = 40
#: Retries of a conditional put answered 409 ConditionalRequestConflict.
CONFLICT_RETRIES = 3


def _media_type(name: str) -> str:
    return _MEDIA_TYPES.get(os.path.splitext(name)[1], "application/octet-stream")


def _error(exc: ClientError) -> tuple[str, int]:
    return (str(exc.response.get("Error", {}).get("Code", "")),
            int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0))


def _missing(exc: ClientError) -> bool:
    code, status = _error(exc)
    return status == 404 or code in ("NoSuchKey", "404", "NotFound")


class S3Store(Store):
    """Blobs in ``bucket`` under ``prefix`` (``""`` or ending in ``/``).
    ``endpoint_url`` names an S3-compatible server (then path-style
    addressing, ``http://host/bucket/key``, which every such server
    serves); None = AWS, or ``AWS_ENDPOINT_URL`` (boto3 reads it). The
    credentials and region come from boto3's usual chain
    (``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION`` /
    ``AWS_DEFAULT_REGION``, ``~/.aws``, instance roles)."""

    def __init__(self, bucket: str, prefix: str = "", *, endpoint_url: str | None = None, client=None) -> None:
        self.bucket = bucket
        self.prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._blobs = f"{self.prefix}blobs/"
        self._cache = f"{self.prefix}c2pa-cache/"
        self._conditional = True
        custom = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self.client = client or boto3.session.Session().client(
            "s3", endpoint_url=endpoint_url,
            region_name=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None,
            config=Config(signature_version="s3v4", max_pool_connections=MAX_POOL_CONNECTIONS,
                          retries={"mode": "standard", "max_attempts": 3},
                          s3={"addressing_style": "path" if custom else "auto"}))

    def check(self) -> None:
        """HEAD the bucket (S3 API HeadBucket), so a wrong name or
        credentials stop the start, not the first upload. Raises
        :class:`StorageError` naming the bucket and the server's answer."""
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code, status = _error(exc)
            raise StorageError(f"cannot use the S3 bucket {self.bucket!r} ({status} {code}): check the bucket "
                               "name, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the endpoint URL") from None
        except Exception as exc:  # connection refused, DNS...
            raise StorageError(f"cannot reach the S3 server for bucket {self.bucket!r}: {exc}") from None

    # ------------------------------------------------------------ primitives

    def _put_once(self, name: str, data: bytes) -> None:
        key = self._blobs + name
        attempts = CONFLICT_RETRIES
        while self._conditional:
            try:
                self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=_media_type(name),
                                       IfNoneMatch="*")
                return
            except ClientError as exc:
                code, status = _error(exc)
                if status == 412 or code == "PreconditionFailed":
                    self._touch(key, name)
                    return
                if (status == 409 or code == "ConditionalRequestConflict") and attempts > 0:
                    # A concurrent write or delete of the key: S3 says retry (PutObject, If-None-Match).
                    attempts -= 1
                    continue
                if status != 501 and code != "NotImplemented":
                    raise
                log.info("the S3 server does not take If-None-Match on PUT; using HEAD then PUT")
                self._conditional = False
        if self._stat(name) is not None:
            self._touch(key, name)
            return
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=_media_type(name))

    def _touch(self, key: str, name: str) -> None:
        try:
            self.client.copy_object(Bucket=self.bucket, Key=key, CopySource={"Bucket": self.bucket, "Key": key},
                                    MetadataDirective="REPLACE", ContentType=_media_type(name))
        except ClientError as exc:
            log.warning("could not refresh the age of %s (%s); a gc run soon may remove it", key, _error(exc))

    def _get(self, name: str) -> bytes:
        fh, _ = self._open(name)
        try:
            return fh.read()
        finally:
            fh.close()

    def _open(self, name: str) -> tuple[BinaryIO, int]:
        return self._open_key(self._blobs + name)

    def _open_key(self, key: str) -> tuple[BinaryIO, int]:
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(f"s3://{self.bucket}/{key}") from None
            raise
        return obj["Body"], int(obj["ContentLength"])

    def _stat(self, name: str) -> Entry | None:
        return self._head(self._blobs + name, name)

    def _head(self, key: str, name: str) -> Entry | None:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if _missing(exc):
                return None
            raise
        return Entry(name, head["LastModified"].timestamp(), int(head["ContentLength"]))

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._blobs + name)

    def _list(self, prefix: str) -> Iterator[Entry]:
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                yield Entry(obj["Key"][len(prefix):], obj["LastModified"].timestamp(), int(obj["Size"]))

    def entries(self) -> Iterator[Entry]:
        for entry in self._list(self._blobs):  # list_objects_v2 returns keys in UTF-8 binary order
            shard, slash, rest = entry.name.partition("/")
            if slash and SHARD_RE.match(shard) and rest and "/" not in rest:
                yield entry

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._blobs}{name}"

    def cache_get(self, name: str) -> bytes | None:
        try:
            fh, _ = self._open_key(self._cache + name)
        except FileNotFoundError:
            return None
        try:
            return fh.read()
        finally:
            fh.close()

    def cache_exists(self, name: str) -> bool:
        return self._head(self._cache + name, name) is not None

    def cache_put(self, name: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._cache + name, Body=data, ContentType=_media_type(name))

    def cache_entries(self) -> Iterator[Entry]:
        yield from self._list(self._cache)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def presigned_url(self, sha256: str, suffix: str, *, media_type: str, cache_control: str,
                      expires_s: int, content_disposition: str | None = None) -> str:
        """A presigned GET URL of blob ``sha256``'s ``suffix`` file, valid
        ``expires_s`` seconds (SigV4 query authentication, at most 7 days:
        https://docs.aws.amazon.com/AmazonS3/latest/API/sigv4-query-string-auth.html;
        boto3 ``generate_presigned_url``). The ``response-content-type``,
        ``response-cache-control`` and ``response-content-disposition``
        parameters make S3 answer with the app's headers (GetObject
        request parameters). Signing is local: no request is made."""
        params = {"Bucket": self.bucket, "Key": self._blobs + blob_name(sha256, suffix),
                  "ResponseContentType": media_type, "ResponseCacheControl": cache_control}
        if content_disposition:
            params["ResponseContentDisposition"] = content_disposition
        return self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=int(expires_s))

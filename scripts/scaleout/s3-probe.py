#!/usr/bin/python3
"""s3-probe.py ENDPOINT ACCESS_KEY SECRET_KEY — exit 0 once a signed S3 round
trip works: list buckets, create a bucket, PUT/GET/DELETE an object, delete
the bucket. Used by ceph-up.sh to know radosgw really serves requests.

Python's standard library only (SigV4 by hand): a fresh machine has Ceph's
python3 but not necessarily curl, and no AWS CLI.
"""
import datetime
import hashlib
import hmac
import os
import sys
import urllib.error
import urllib.request

endpoint, access_key, secret_key = sys.argv[1:4]
region = "us-east-1"
host = endpoint.split("://", 1)[1].rstrip("/")


def request(method, path, body=b""):
    amz_date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    day = amz_date[:8]
    payload_hash = hashlib.sha256(body).hexdigest()
    headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
    signed = ";".join(sorted(headers))
    canonical = "\n".join([
        method, path, "",
        "".join(f"{k}:{headers[k]}\n" for k in sorted(headers)),
        signed, payload_hash,
    ])
    scope = f"{day}/{region}/s3/aws4_request"
    to_sign = "\n".join(["AWS4-HMAC-SHA256", amz_date, scope,
                         hashlib.sha256(canonical.encode()).hexdigest()])
    key = ("AWS4" + secret_key).encode()
    for part in (day, region, "s3", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    req = urllib.request.Request(
        endpoint.rstrip("/") + path,
        data=body if method in ("PUT", "POST") else None,
        method=method,
        headers={
            "x-amz-content-sha256": payload_hash,
            "x-amz-date": amz_date,
            "Authorization": f"AWS4-HMAC-SHA256 Credential={access_key}/{scope}, "
                             f"SignedHeaders={signed}, Signature={signature}",
        },
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        raise SystemExit(f"{method} {path}: HTTP {e.code}: {e.read()[:300]!r}")
    except OSError as e:
        raise SystemExit(f"{method} {path}: {e}")


bucket = "/probe-" + os.urandom(6).hex()
data = os.urandom(4096)
request("GET", "/")
request("PUT", bucket)
request("PUT", bucket + "/object", data)
status, got = request("GET", bucket + "/object")
if got != data:
    raise SystemExit(f"GET returned {len(got)} bytes that differ from the {len(data)} written")
request("DELETE", bucket + "/object")
request("DELETE", bucket)

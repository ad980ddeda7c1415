"""Uploads files and folders to a bucket of an S3-compatible server (moto in the tests).

Usage: python s3_upload.py ENDPOINT BUCKET PATH...   (folders are uploaded with their tree)
"""

import sys
from pathlib import Path

import boto3

endpoint, bucket, *paths = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                  region_name="us-east-1")
s3.create_bucket(Bucket=bucket)
for path in map(Path, paths):
    files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
    for f in files:
        key = f.name if path.is_file() else f"{path.name}/{f.relative_to(path).as_posix()}"
        s3.upload_file(str(f), bucket, key)

#!/usr/bin/env python3
"""Sets up an emulated bucket with two credentials, as an operator would:
`creator` may only create objects (the backed-up server), `pruner` may do
everything (the trusted host). Prints them as JSON.

usage: cloud_setup.py s3 ENDPOINT        (moto)
       cloud_setup.py azure ENDPOINT     (azurite)
"""
import json
import sys
from datetime import datetime, timedelta, timezone

BUCKET = "snaptest"


def s3(endpoint):
    import boto3
    kw = dict(endpoint_url=endpoint, region_name="us-east-1",
              aws_access_key_id="root", aws_secret_access_key="root")
    boto3.client("s3", **kw).create_bucket(Bucket=BUCKET)
    iam = boto3.client("iam", **kw)
    out = {}
    grants = (("creator", ["s3:PutObject"], [f"arn:aws:s3:::{BUCKET}/*"]),
              ("pruner", ["s3:*"], ["*"]))
    for user, actions, resources in grants:
        iam.create_user(UserName=user)
        policy = {"Version": "2012-10-17", "Statement": [
            {"Effect": "Allow", "Action": actions, "Resource": resources}]}
        iam.put_user_policy(UserName=user, PolicyName="p", PolicyDocument=json.dumps(policy))
        key = iam.create_access_key(UserName=user)["AccessKey"]
        out[user] = {"AWS_ACCESS_KEY_ID": key["AccessKeyId"],
                     "AWS_SECRET_ACCESS_KEY": key["SecretAccessKey"]}
    return out


ACCOUNT = "devstoreaccount1"
KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def azure(endpoint):
    from azure.storage.blob import (BlobServiceClient, ContainerSasPermissions,
                                    generate_container_sas)
    full = (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={KEY};"
            f"BlobEndpoint={endpoint}/{ACCOUNT};")
    BlobServiceClient.from_connection_string(full).create_container(BUCKET)
    sas = generate_container_sas(ACCOUNT, BUCKET, account_key=KEY,
                                 permission=ContainerSasPermissions(create=True),
                                 expiry=datetime.now(timezone.utc) + timedelta(hours=2))
    creator = f"BlobEndpoint={endpoint}/{ACCOUNT};SharedAccessSignature={sas};"
    return {"creator": {"AZURE_STORAGE_CONNECTION_STRING": creator},
            "pruner": {"AZURE_STORAGE_CONNECTION_STRING": full}}


if __name__ == "__main__":
    kind, endpoint = sys.argv[1], sys.argv[2]
    print(json.dumps(s3(endpoint) if kind == "s3" else azure(endpoint)))

"""Drives `edgepack serve` with the real AWS clients: boto3 (botocore 1.40.0, the last with the
lookoutvision model) and the AWS CLI 1.42.0 (`--endpoint-url`), through the whole flow and every
error the service answers. Exits non-zero at the first failed check.

Environment: EDGEPACK_ENDPOINT (the server's URL), EDGEPACK_KEY_ALL / EDGEPACK_SECRET_ALL (a key
for every project), EDGEPACK_KEY_SCOPED / EDGEPACK_SECRET_SCOPED (a key for `line-*` only),
EDGEPACK_MODEL / EDGEPACK_CONTRACT (a sample ONNX model and its contract), AWS_CLI (the `aws`
program), EDGEPACK_PROJECT_PREFIX (names this run's projects, so that runs against one shared
database do not collide).
"""

import datetime
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from unittest import mock

import boto3
import botocore.auth
import botocore.awsrequest
import botocore.credentials
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["EDGEPACK_ENDPOINT"]
REGION = "eu-west-1"
P = os.environ.get("EDGEPACK_PROJECT_PREFIX", "")
LINE1, LINE2, OTHER = f"line-{P}1", f"line-{P}2", "other" + (f"-{P}" if P else "")
CHECKS = 0


def check(cond, what):
    global CHECKS
    if not cond:
        print(f"FAILED: {what}", flush=True)
        sys.exit(1)
    CHECKS += 1
    print(f"ok: {what}", flush=True)


def client(key, secret, **cfg):
    return boto3.client(
        "lookoutvision",
        endpoint_url=ENDPOINT,
        region_name=REGION,
        aws_access_key_id=key,
        aws_secret_access_key=secret,
        config=Config(retries={"max_attempts": 1}, **cfg),
    )


def error_of(call):
    """The AWS error code and status of a call that must fail."""
    try:
        call()
    except ClientError as e:
        return e.response["Error"]["Code"], e.response["ResponseMetadata"]["HTTPStatusCode"], e
    raise AssertionError("the call succeeded")


def signed(method, path, key, secret, body=b"", headers=None, when=None):
    """A request signed by botocore's own SigV4 signer (for our extension and raw cases)."""
    req = botocore.awsrequest.AWSRequest(method=method, url=ENDPOINT + path, data=body, headers=headers or {})
    creds = botocore.credentials.Credentials(key, secret)
    if when is None:
        botocore.auth.SigV4Auth(creds, "lookoutvision", REGION).add_auth(req)
    else:

        class Skewed(datetime.datetime):
            @classmethod
            def utcnow(cls):
                return when

        with mock.patch.object(botocore.auth.datetime, "datetime", Skewed):
            botocore.auth.SigV4Auth(creds, "lookoutvision", REGION).add_auth(req)
    prepared = req.prepare()
    r = urllib.request.Request(prepared.url, data=prepared.body or None, method=method, headers=dict(prepared.headers))
    try:
        with urllib.request.urlopen(r, timeout=60) as resp:
            return resp.status, resp.headers, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"{}")


def aws(*args, key, secret, ok=True):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=key, AWS_SECRET_ACCESS_KEY=secret, AWS_DEFAULT_REGION=REGION)
    env.pop("AWS_PROFILE", None)
    p = subprocess.run(
        [os.environ["AWS_CLI"], "lookoutvision", *args, "--endpoint-url", ENDPOINT, "--output", "json"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    if ok and p.returncode != 0:
        print(p.stdout, p.stderr, file=sys.stderr)
        check(False, f"aws {' '.join(args)} exits 0")
    return p


def main():
    key, secret = os.environ["EDGEPACK_KEY_ALL"], os.environ["EDGEPACK_SECRET_ALL"]
    skey, ssecret = os.environ["EDGEPACK_KEY_SCOPED"], os.environ["EDGEPACK_SECRET_SCOPED"]
    lv = client(key, secret)
    scoped = client(skey, ssecret)

    # Projects: boto3 and the AWS CLI.
    m = lv.create_project(ProjectName=LINE1, ClientToken=f"cp-{P}1")["ProjectMetadata"]
    again = lv.create_project(ProjectName=LINE1, ClientToken=f"cp-{P}1")["ProjectMetadata"]
    check(again == m, "CreateProject retried with its ClientToken answers as the first call")
    check(m["ProjectName"] == LINE1 and isinstance(m["CreationTimestamp"], datetime.datetime), "boto3 CreateProject")
    out = json.loads(aws("create-project", "--project-name", LINE2, key=key, secret=secret).stdout)
    check(out["ProjectMetadata"]["ProjectName"] == LINE2, "aws create-project")
    scoped_other = error_of(lambda: scoped.create_project(ProjectName=OTHER))
    check(scoped_other[:2] == ("AccessDeniedException", 403), f"a scoped key may not create {OTHER}: {scoped_other[:2]}")
    lv.create_project(ProjectName=OTHER)
    code = error_of(lambda: lv.create_project(ProjectName=LINE1))
    check(code[:2] == ("ConflictException", 409), f"a second CreateProject of one name: {code[:2]}")
    code = error_of(lambda: lv.create_project(ProjectName="bad name!"))
    check(code[:2] == ("ValidationException", 400), f"a project name against its pattern: {code[:2]}")
    code = error_of(lambda: lv.describe_project(ProjectName=f"missing-{P}x"))
    check(
        code[:2] == ("ResourceNotFoundException", 404) and code[2].response["ResourceType"] == "PROJECT",
        "DescribeProject of a missing project: ResourceNotFoundException, ResourceType PROJECT",
    )

    # Import (the extension), signed by botocore's SigV4 signer.
    onnx = open(os.environ["EDGEPACK_MODEL"], "rb").read()
    contract = json.dumps(json.load(open(os.environ["EDGEPACK_CONTRACT"])), separators=(",", ":"))
    status, _, body = signed(
        "POST",
        f"/edgepack/2020-11-20/projects/{LINE1}/models",
        key,
        secret,
        onnx,
        {"Content-Type": "application/octet-stream", "X-Edgepack-Contract": contract, "X-Edgepack-Source": "s.onnx"},
    )
    check(status == 200 and body["ModelDescription"]["ModelVersion"] == "1", f"ImportModel: {status} {body}")
    d = lv.describe_model(ProjectName=LINE1, ModelVersion="latest")["ModelDescription"]
    check(d["Status"] == "TRAINED" and d["ModelVersion"] == "1", "DescribeModel latest")

    # Packaging jobs: with a ClientToken (twice: one job), with another job's parameters
    # under that token (conflict), with boto3's generated token, and with none at all.
    cfg = {
        "Greengrass": {
            "TargetPlatform": {"Os": "LINUX", "Arch": "X86_64"},
            "CompilerOptions": "{'mcpu': 'core-avx2'}",
            "S3OutputLocation": {"Bucket": "parts", "Prefix": P or "run"},
            "ComponentName": f"line{P}.Defects",
        }
    }
    a = lv.start_model_packaging_job(ProjectName=LINE1, ModelVersion="1", JobName="job-a", Configuration=cfg, ClientToken="tok-a")
    b = lv.start_model_packaging_job(ProjectName=LINE1, ModelVersion="1", JobName="job-a", Configuration=cfg, ClientToken="tok-a")
    check(a["JobName"] == b["JobName"] == "job-a", "StartModelPackagingJob twice with one ClientToken: one job")
    code = error_of(
        lambda: lv.start_model_packaging_job(ProjectName=LINE1, ModelVersion="1", JobName="job-z", Configuration=cfg, ClientToken="tok-a")
    )
    check(code[:2] == ("ConflictException", 409), f"one ClientToken with other parameters: {code[:2]}")
    cfg_b = json.loads(json.dumps(cfg))
    cfg_b["Greengrass"]["ComponentVersion"] = "2.0.0"
    c = lv.start_model_packaging_job(ProjectName=LINE1, ModelVersion="1", Configuration=cfg_b)
    check(c["JobName"] and c["JobName"] != "job-a", f"a generated job name: {c['JobName']}")
    cfg_c = json.loads(json.dumps(cfg))
    cfg_c["Greengrass"]["ComponentVersion"] = "3.0.0"
    status, headers, body = signed(
        "POST",
        f"/2020-11-20/projects/{LINE1}/modelpackagingjobs",
        key,
        secret,
        json.dumps({"ModelVersion": "1", "JobName": "job-raw", "Configuration": cfg_c}).encode(),
        {"Content-Type": "application/json"},
    )
    check(status == 200 and body == {"JobName": "job-raw"}, f"a start without any ClientToken: {status} {body}")
    check(headers.get("x-amzn-RequestId"), "responses carry x-amzn-RequestId")
    code = error_of(lambda: scoped.describe_model_packaging_job(ProjectName=OTHER, JobName="job-a"))
    check(code[:2] == ("AccessDeniedException", 403), "a scoped key may not read another project's jobs")

    # Wait for the first job (the worker process runs it), as users do.
    deadline = time.time() + 300
    while True:
        j = lv.describe_model_packaging_job(ProjectName=LINE1, JobName="job-a")["ModelPackagingDescription"]
        if j["Status"] in ("SUCCEEDED", "FAILED") or time.time() > deadline:
            break
        time.sleep(0.5)
    check(j["Status"] == "SUCCEEDED", f"job-a ran: {j['Status']} {j.get('StatusMessage')}")
    gg = j["ModelPackagingOutputDetails"]["Greengrass"]
    check(gg["ComponentName"] == f"line{P}.Defects" and gg["ComponentVersion"] == "1.0.0", "the job's component")
    out = json.loads(
        aws(
            "describe-model-packaging-job", "--project-name", LINE1, "--job-name", "job-a",
            "--query", "ModelPackagingDescription.Status", key=key, secret=secret,
        ).stdout
    )
    check(out == "SUCCEEDED", "aws describe-model-packaging-job --query")

    # Pagination: pages of one, boto3's paginator and the AWS CLI's automatic paging.
    page = lv.list_model_packaging_jobs(ProjectName=LINE1, MaxResults=1)
    check(len(page["ModelPackagingJobs"]) == 1 and page.get("NextToken"), "ListModelPackagingJobs MaxResults=1")
    names = [
        j["JobName"]
        for p in lv.get_paginator("list_model_packaging_jobs").paginate(ProjectName=LINE1, PaginationConfig={"PageSize": 1})
        for j in p["ModelPackagingJobs"]
    ]
    check(sorted(names) == sorted(["job-a", c["JobName"], "job-raw"]), f"boto3's paginator over the jobs: {names}")
    listed = json.loads(aws("list-projects", "--page-size", "1", key=key, secret=secret).stdout)["Projects"]
    mine = {p["ProjectName"] for p in listed} & {LINE1, LINE2, OTHER}
    check(mine == {LINE1, LINE2, OTHER}, f"aws list-projects --page-size 1 pages through all: {mine}")
    seen = {p["ProjectName"] for p in scoped.list_projects()["Projects"]}
    check(LINE1 in seen and LINE2 in seen and OTHER not in seen, "a scoped key lists its projects only")
    code = error_of(lambda: lv.list_projects(NextToken="bm90LWEtdG9rZW4="))
    check(code[:2] == ("ValidationException", 400), f"a forged NextToken: {code[:2]}")

    # Authentication failures: AWS's codes.
    code = error_of(lambda: client(key, "x" * 40).list_projects())
    check(code[:2] == ("InvalidSignatureException", 403), f"a wrong secret: {code[:2]}")
    code = error_of(lambda: client("EPAKAAAAAAAAAAAAAAAA", secret).list_projects())
    check(code[:2] == ("UnrecognizedClientException", 403), f"an unknown key: {code[:2]}")
    code = error_of(lambda: client(key, secret, signature_version=UNSIGNED).list_projects())
    check(code[:2] == ("MissingAuthenticationTokenException", 403), f"an unsigned request: {code[:2]}")
    late = datetime.datetime.utcnow() - datetime.timedelta(minutes=20)
    status, headers, body = signed("GET", "/2020-11-20/projects", key, secret, when=late)
    check(
        status == 403 and headers["x-amzn-ErrorType"] == "InvalidSignatureException" and "Signature expired" in body["Message"],
        f"a request signed 20 minutes ago: {status} {body}",
    )
    p = aws("list-projects", key=key, secret="y" * 40, ok=False)
    # AWS CLI v1 exits 255 on a service error (v2, whose codes the edgepack CLI follows: 254).
    check(p.returncode == 255 and "InvalidSignatureException" in p.stderr, f"aws with a wrong secret: {p.returncode}")
    status, headers, body = signed(
        "POST", f"/2020-11-20/projects/{LINE1}/modelpackagingjobs", key, secret, b"{not json", {"Content-Type": "application/json"}
    )
    check(status == 400 and headers["x-amzn-ErrorType"] == "SerializationException", f"a body that is not JSON: {status}")
    status, headers, _ = signed("GET", "/2020-11-20/nothing-here", key, secret)
    check(status == 404 and headers["x-amzn-ErrorType"] == "UnknownOperationException", "an unbound path")
    code = error_of(lambda: lv.create_model(ProjectName=LINE1, OutputConfig={"S3Location": {"Bucket": "parts"}}))
    check(code[:2] == ("ValidationException", 400) and "ImportModel" in str(code[2]), "CreateModel points to ImportModel")

    # Deletion: a project with models is refused; models then the project.
    code = error_of(lambda: lv.delete_project(ProjectName=LINE1))
    check(code[:2] == ("ConflictException", 409), f"DeleteProject with models: {code[:2]}")
    r = lv.delete_model(ProjectName=LINE1, ModelVersion="1")
    check(r["ResponseMetadata"]["HTTPStatusCode"] == 202 and r["ModelArn"].endswith(f"/{LINE1}/1"), "DeleteModel: 202")
    for name in (LINE1, LINE2, OTHER):
        check(lv.delete_project(ProjectName=name)["ProjectArn"].endswith(name), f"DeleteProject {name}")
    print(f"server clients: {CHECKS} checks passed against {ENDPOINT}", flush=True)


if __name__ == "__main__":
    main()

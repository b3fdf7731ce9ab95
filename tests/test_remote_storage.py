"""Remote storage: push outputs to an S3 remote, pull them into a fresh clone."""
import socket

import pytest

from repos import clone_sharing_cache, run

moto_server = pytest.importorskip(
    "moto.server", reason="moto[server] is needed for a local S3 server: "
                          "pip install -r requirements-test.txt")
pytest.importorskip("dvc_s3", reason="dvc-s3 is needed for S3 remotes: "
                                     "pip install -r requirements.txt")
boto3 = pytest.importorskip("boto3", reason="boto3 comes with dvc-s3")

BUCKET = "chestxray-dvc"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def aws_env(tmp_path):
    """Environment that keeps boto away from this machine's real AWS settings and metadata.

    botocore refuses a config file that is not a regular file (/dev/null), hence an empty one.
    """
    empty = tmp_path / "aws-config"
    empty.touch()
    return {"AWS_EC2_METADATA_DISABLED": "true", "AWS_CONFIG_FILE": str(empty),
            "AWS_SHARED_CREDENTIALS_FILE": str(empty)}


@pytest.fixture
def s3_endpoint():
    """URL of a real S3-protocol server (moto) on 127.0.0.1 holding an empty bucket."""
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    client.create_bucket(Bucket=BUCKET)
    yield endpoint, client
    server.stop()


def use_credentials(repo):
    """Credentials go to .dvc/config.local, which git never shares."""
    for option in ("access_key_id", "secret_access_key"):
        run(["dvc", "remote", "modify", "--local", "storage", option, "testing"], repo)


@pytest.mark.slow
def test_outputs_travel_through_s3_to_a_fresh_clone(
        tiny_repro, tmp_path, s3_endpoint, aws_env):
    endpoint, client = s3_endpoint
    pusher = clone_sharing_cache(tiny_repro.path, tmp_path / "pusher")
    run(["dvc", "remote", "add", "-d", "storage", f"s3://{BUCKET}/store"], pusher)
    run(["dvc", "remote", "modify", "storage", "endpointurl", endpoint], pusher)
    run(["dvc", "remote", "modify", "storage", "region", "us-east-1"], pusher)
    run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam",
         "S3 default remote"], pusher)
    use_credentials(pusher)
    run(["dvc", "push"], pusher, aws_env)

    stored = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET) for item in page.get("Contents", [])]
    assert any(key.startswith("store/files/md5/") for key in stored)

    # A teammate: a fresh clone with its own empty cache, so everything comes from S3.
    puller = tmp_path / "puller"
    run(["git", "clone", "-q", str(pusher), str(puller)], tmp_path)
    use_credentials(puller)
    run(["dvc", "pull"], puller, aws_env)
    for output in ("outputs/model.keras", "outputs/predictions.csv", "outputs/stats.json",
                   "outputs/split.csv"):
        assert (puller / output).read_bytes() == (pusher / output).read_bytes(), output
    assert list((puller / "outputs/dataset/images").glob("*.png"))
    assert "up to date" in run(["dvc", "status"], puller, aws_env)
    assert "Running stage" not in run(["dvc", "repro"], puller, aws_env)

#!/usr/bin/env bash
# Installs the AWS CLI 1.42.0 and boto3 1.40.0 (botocore 1.40.0: the last releases whose
# botocore still carries the lookoutvision model) from PyPI into .cache/venv-aws-1.42.0 and
# prints the venv's bin folder. The real-client tests of `edgepack serve` drive the server
# with them. Idempotent: a complete venv is kept.
set -euo pipefail
cd "$(dirname "$0")/.."
AWSCLI=1.42.0
BOTOCORE=1.40.0
BOTO3=1.40.0
venv="$PWD/.cache/venv-aws-$AWSCLI"
if [ ! -f "$venv/.complete" ]; then
    command -v python3 >/dev/null || { echo "setup-aws: python3 is required" >&2; exit 1; }
    echo "setup-aws: installing awscli $AWSCLI, boto3 $BOTO3, botocore $BOTOCORE into $venv" >&2
    rm -rf "$venv"
    mkdir -p "$(dirname "$venv")"
    python3 -m venv "$venv" >&2
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
        "awscli==$AWSCLI" "botocore==$BOTOCORE" "boto3==$BOTO3" >&2
    # The lookoutvision model must be there (later botocores dropped it).
    "$venv/bin/python" -c "import botocore.session as s; s.get_session().get_service_model('lookoutvision')" >&2
    touch "$venv/.complete"
fi
echo "$venv/bin"

#!/bin/sh
# Generates the sparkpods.v1 Python modules from proto/ into sparkpods/v1/
# (git-ignored), with Debian's protoc and grpc_python_plugin: the same
# toolchain as the python3-protobuf and python3-grpcio runtime they run on.
# `make clients-python` installs both and runs this; so does the Go test in
# deploy/ before it runs the Python tests.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
proto=$here/../../proto
rm -rf "$here/sparkpods/v1"
mkdir -p "$here/sparkpods/v1"
/usr/bin/protoc -I "$proto" \
  --python_out="$here" --pyi_out="$here" \
  --plugin=protoc-gen-grpc_python=/usr/bin/grpc_python_plugin --grpc_python_out="$here" \
  "$proto"/sparkpods/v1/*.proto

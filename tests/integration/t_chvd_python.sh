#!/usr/bin/env bash
# An independent client (Python grpcio, code generated from the protos by protoc)
# creates, boots, inspects, pauses, shuts down and deletes a VM through chvd.
. "$(dirname "$0")/lib.sh"
need_kvm
$PY -c 'import grpc, google.protobuf' 2>/dev/null || skip "python3-grpcio / python3-protobuf not installed"
command -v protoc >/dev/null || skip "protoc (protobuf-compiler) not installed"
mkdir -p "$T/py"
protoc -I"$CHV_SOURCE_DIR/api" --python_out="$T/py" chv/v1/vm.proto grpc/health/v1/health.proto
start_chvd
$PY "$CHV_SOURCE_DIR/tests/integration/grpc_client.py" "$T/py" "$SOCK" "$ELF" ||
	{ tail -n 40 "$T/chvd.log"; fail "the Python client failed"; }
stop_chvd
echo PASS

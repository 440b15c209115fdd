"""An independent client of chvd: Python grpcio with messages generated from
the project's protos by protoc. Drives a VM through its lifecycle and checks
the error statuses. Usage: grpc_client.py GEN_DIR SOCKET ELF"""
import importlib.util
import sys
import time

import grpc

sys.path.insert(0, sys.argv[1])
from chv.v1 import vm_pb2 as pb  # noqa: E402

# The generated grpc/health/v1 package would shadow grpcio's own "grpc": load it by path.
_spec = importlib.util.spec_from_file_location("health_pb2", f"{sys.argv[1]}/grpc/health/v1/health_pb2.py")
health_pb2 = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(health_pb2)

SOCK, ELF = sys.argv[2], sys.argv[3]
ch = grpc.insecure_channel("unix:" + SOCK)


def call(service, method, req, resp_cls, timeout=60):
    fn = ch.unary_unary(f"/{service}/{method}",
                        request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=resp_cls.FromString)
    return fn(req, timeout=timeout)


def vm(method, req, resp_cls=pb.VmInfo):
    return call("chv.v1.Vm", method, req, resp_cls)


def expect_error(code, fn, *args, contains=""):
    try:
        fn(*args)
    except grpc.RpcError as e:
        assert e.code() == code, f"expected {code}, got {e.code()}: {e.details()}"
        assert contains in e.details(), f"{e.details()!r} lacks {contains!r}"
        return e.details()
    raise AssertionError(f"expected {code}, the call succeeded")


ping = call("chv.v1.Vmm", "Ping", pb.PingRequest(), pb.PingResponse)
assert ping.version and "kvm" in ping.features, ping
health = call("grpc.health.v1.Health", "Check", health_pb2.HealthCheckRequest(service="chv.v1.Vm"),
              health_pb2.HealthCheckResponse)
assert health.status == health_pb2.HealthCheckResponse.SERVING

config = pb.VmConfig(
    payload=pb.PayloadConfig(kernel=ELF, cmdline="chv.mem=64M chv.cpus=2 chv.tag=py chv.action=hang"),
    cpus=pb.CpusConfig(boot_vcpus=2),
    memory=pb.MemoryConfig(size=64 << 20),
    serial=pb.ConsoleConfig(mode=pb.CONSOLE_MODE_TTY))
info = vm("Create", pb.CreateRequest(vm_id="py-vm", config=config))
assert info.id == "py-vm" and info.state == pb.VM_STATE_CREATED, info
assert info.config.cpus.boot_vcpus == 2 and info.config.memory.size == 64 << 20

expect_error(grpc.StatusCode.ALREADY_EXISTS, vm, "Create", pb.CreateRequest(vm_id="py-vm", config=config))
bad = pb.VmConfig(payload=pb.PayloadConfig(kernel=ELF), cpus=pb.CpusConfig(boot_vcpus=300))
expect_error(grpc.StatusCode.INVALID_ARGUMENT, vm, "Create", pb.CreateRequest(vm_id="bad", config=bad),
             contains="300")
expect_error(grpc.StatusCode.INVALID_ARGUMENT, vm, "Create",
             pb.CreateRequest(vm_id="../etc", config=config), contains="../etc")
expect_error(grpc.StatusCode.NOT_FOUND, vm, "Info", pb.VmRequest(vm_id="nope"), contains="nope")
expect_error(grpc.StatusCode.FAILED_PRECONDITION, vm, "Pause", pb.VmRequest(vm_id="py-vm"),
             contains="Created")
expect_error(grpc.StatusCode.UNIMPLEMENTED, vm, "Snapshot",
             pb.SnapshotRequest(vm_id="py-vm", destination_url="file:///tmp/x"), pb.SnapshotResponse)

info = vm("Boot", pb.VmRequest(vm_id="py-vm"))
assert info.state == pb.VM_STATE_RUNNING and info.worker_pid > 0, info
expect_error(grpc.StatusCode.FAILED_PRECONDITION, vm, "Boot", pb.VmRequest(vm_id="py-vm"),
             contains="Running")

# The console history holds the guest's TAP output.
deadline = time.time() + 60
text = ""
while time.time() < deadline and "# chv-testguest:" not in text:
    stream = ch.stream_stream("/chv.v1.Vm/Console",
                              request_serializer=lambda m: m.SerializeToString(),
                              response_deserializer=pb.ConsoleOutput.FromString)
    text = b"".join(o.data for o in stream(iter([pb.ConsoleInput(vm_id="py-vm", no_follow=True)]),
                                             timeout=30)).decode("ascii", "replace")
    time.sleep(0.2)
assert "# tag: py" in text and "0 failed" in text, text

assert vm("Pause", pb.VmRequest(vm_id="py-vm")).state == pb.VM_STATE_PAUSED
assert vm("Resume", pb.VmRequest(vm_id="py-vm")).state == pb.VM_STATE_RUNNING
counters = vm("Counters", pb.VmRequest(vm_id="py-vm"), pb.CountersResponse)
assert counters.counters["console.output_bytes"] > 0, counters
listed = vm("List", pb.ListRequest(), pb.ListResponse)
assert [v.id for v in listed.vms] == ["py-vm"], listed
expect_error(grpc.StatusCode.FAILED_PRECONDITION, vm, "Delete", pb.DeleteRequest(vm_id="py-vm"),
             pb.DeleteResponse, contains="Running")
info = vm("Shutdown", pb.ShutdownRequest(vm_id="py-vm", force=True))
assert info.state == pb.VM_STATE_SHUTDOWN and info.worker_pid == 0, info
vm("Delete", pb.DeleteRequest(vm_id="py-vm"), pb.DeleteResponse)
expect_error(grpc.StatusCode.NOT_FOUND, vm, "Info", pb.VmRequest(vm_id="py-vm"))
print("python grpcio client: all checks passed")

"""Hostile and careless clients against chvd: garbage on the socket, undecodable
and oversized messages, unknown methods, streams abandoned mid-way. chvd must
answer each with the right status and keep serving. Usage: abuse_client.py GEN SOCKET"""
import socket
import sys
import threading

import grpc

sys.path.insert(0, sys.argv[1])
from chv.v1 import vm_pb2 as pb  # noqa: E402

SOCK = sys.argv[2]


def raw_call(method, payload, timeout=10):
    ch = grpc.insecure_channel("unix:" + SOCK)
    fn = ch.unary_unary(method, request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        fn(payload, timeout=timeout)
    except grpc.RpcError as e:
        return e.code(), e.details()
    finally:
        ch.close()
    return grpc.StatusCode.OK, ""


def ping():
    ch = grpc.insecure_channel("unix:" + SOCK)
    fn = ch.unary_unary("/chv.v1.Vmm/Ping", request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=pb.PingResponse.FromString)
    r = fn(pb.PingRequest(), timeout=10)
    ch.close()
    return r


# 1. Bytes that are not HTTP/2 at all: the connection is dropped, chvd lives.
for junk in (b"\x00" * 100, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 64):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(SOCK)
    s.sendall(junk)
    s.settimeout(5)
    try:
        while s.recv(4096):
            pass
    except (socket.timeout, ConnectionResetError):
        pass
    s.close()
assert ping().version

# 2. Undecodable protobuf: INVALID_ARGUMENT.
code, _ = raw_call("/chv.v1.Vm/Create", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01")
assert code == grpc.StatusCode.INVALID_ARGUMENT, code
code, _ = raw_call("/chv.v1.Vm/Info", b"\x0a\x80\x80\x80\x80\x10abc")  # length runs past the end
assert code == grpc.StatusCode.INVALID_ARGUMENT, code
# A config holding a field numbered 0 (tag 0x05 as the 2-byte varint 85 00, fixed32): protobuf-c reads it
# as an unknown field but cannot read its own re-encoding back.
code, details = raw_call("/chv.v1.Vm/Create", b"\x0a\x02z0\x12\x06\x85\x00\x00\x00\x00\x00")
assert code == grpc.StatusCode.INVALID_ARGUMENT, (code, details)
assert "config" in details, details

# 3. Oversized: RESOURCE_EXHAUSTED, nothing created.
big = pb.CreateRequest(vm_id="big", config=pb.VmConfig(payload=pb.PayloadConfig(
    kernel="/nonexistent", cmdline="x" * (5 << 20)))).SerializeToString()
code, _ = raw_call("/chv.v1.Vm/Create", big)
assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, code

# 4. Unknown method: UNIMPLEMENTED, not a timeout.
code, _ = raw_call("/chv.v1.Vm/Explode", b"")
assert code == grpc.StatusCode.UNIMPLEMENTED, code

# 5. Streams abandoned mid-way (events and console), many at once.
def abandon(i):
    ch = grpc.insecure_channel("unix:" + SOCK)
    watch = ch.unary_stream("/chv.v1.Vm/WatchEvents", request_serializer=lambda m: m.SerializeToString(),
                            response_deserializer=pb.Event.FromString)
    it = watch(pb.WatchEventsRequest(), timeout=30)
    threading.Timer(0.2, it.cancel).start()
    try:
        for _ in it:
            pass
    except grpc.RpcError as e:
        assert e.code() == grpc.StatusCode.CANCELLED, e.code()
    ch.close()


threads = [threading.Thread(target=abandon, args=(i,)) for i in range(16)]
for t in threads:
    t.start()
for t in threads:
    t.join()

# 6. A console on a VM that does not exist, and one with no first message.
ch = grpc.insecure_channel("unix:" + SOCK)
console = ch.stream_stream("/chv.v1.Vm/Console", request_serializer=lambda m: m.SerializeToString(),
                           response_deserializer=pb.ConsoleOutput.FromString)
for first, want in ((pb.ConsoleInput(vm_id="ghost"), grpc.StatusCode.NOT_FOUND),
                    (pb.ConsoleInput(), grpc.StatusCode.INVALID_ARGUMENT)):
    try:
        list(console(iter([first]), timeout=10))
        raise AssertionError("console should fail")
    except grpc.RpcError as e:
        assert e.code() == want, (e.code(), e.details())
ch.close()

assert ping().vms == 0
print("abuse client: chvd answered every case and still serves")

"""Load and abuse client for chvd: N API calls from C concurrent client
processes, valid ones mixed with malformed (undecodable bytes, wrong wire
types, truncated), oversized (over the 4 MiB limit), out-of-order (Boot
before Create, Delete twice, Info on unknown ids, Shutdown of a VM not
booted) and cancelled ones (deadlines that expire mid-call, streams the
client cancels, channels closed under a stream, connections that send
garbage). Every answer's status is checked against the one expected.

Usage: chvd_load.py GEN_DIR SOCKET [--calls N] [--clients C] [--seed S]
         [--kernel PATH] [--kvm] [--create-status NAME --create-detail TEXT]

Without --kvm, a valid Create must fail with --create-status and a message
containing --create-detail (what chvd answers on a host without KVM); with
--kvm, each client also creates, boots, shuts down and deletes real VMs.
Prints one JSON summary line; exits 1 if any answer was not the expected one.
"""
import argparse
import importlib.util
import json
import os
import random
import socket
import subprocess
import sys
import threading
import time

import grpc

SC = grpc.StatusCode
MAX_MESSAGE = 4 << 20  # chvd's request limit


def load_protos(gen):
    sys.path.insert(0, gen)
    from chv.v1 import vm_pb2  # noqa: E402
    # The generated grpc/health/v1 package would shadow grpcio: load it by path.
    spec = importlib.util.spec_from_file_location("health_pb2", f"{gen}/grpc/health/v1/health_pb2.py")
    health = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(health)
    return vm_pb2, health


class Client:
    """One client process: its own channel (re-made now and then), its own
    VM ids, a call budget; records every mismatch."""

    def __init__(self, args, idx, pb, hpb):
        self.a, self.idx, self.pb, self.hpb = args, idx, pb, hpb
        self.rng = random.Random(args.seed * 1000 + idx)
        self.sock = args.socket
        self.ch = None
        self.calls = 0
        self.kinds = {}
        self.bad = []
        self.vm_seq = 0

    # ---- plumbing ----
    def channel(self):
        if self.ch is None:
            self.ch = grpc.insecure_channel("unix:" + self.sock)
        return self.ch

    def reconnect(self):
        if self.ch is not None:
            self.ch.close()
        self.ch = None

    def unary(self, method, req, resp_cls=None, timeout=30, raw=False):
        """(status, details, response); raw: req is bytes and so is the answer."""
        fn = self.channel().unary_unary(
            method,
            request_serializer=(lambda b: b) if raw else (lambda m: m.SerializeToString()),
            response_deserializer=(lambda b: b) if raw or resp_cls is None else resp_cls.FromString)
        self.calls += 1
        try:
            return SC.OK, "", fn(req, timeout=timeout)
        except grpc.RpcError as e:
            return e.code(), e.details() or "", None

    def expect(self, kind, got, want, contains=""):
        code, details = got[0], got[1]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        wants = want if isinstance(want, tuple) else (want,)
        if code not in wants or (contains and contains not in details):
            self.bad.append({"kind": kind, "want": [w.name for w in wants], "contains": contains,
                             "got": code.name, "details": details[:300]})
        return code

    def vm(self, method):
        return f"/chv.v1.Vm/{method}"

    def ghost(self):
        """An id no VM has: these calls are out of order by construction."""
        return f"ghost-{self.idx}-{self.rng.randrange(1 << 30)}"

    def config(self, **kw):
        pb = self.pb
        cmdline = "chv.checks=boot chv.action=hang"
        c = pb.VmConfig(payload=pb.PayloadConfig(kernel=self.a.kernel, cmdline=cmdline),
                        memory=pb.MemoryConfig(size=32 << 20),
                        serial=pb.ConsoleConfig(mode=pb.CONSOLE_MODE_NULL))
        for k, v in kw.items():
            setattr(c, k, v) if not hasattr(v, "CopyFrom") else getattr(c, k).CopyFrom(v)
        return c

    # ---- valid and out-of-order unary calls ----
    def k_ping(self):
        st = self.unary("/chv.v1.Vmm/Ping", self.pb.PingRequest(), self.pb.PingResponse)
        if self.expect("ping", st, SC.OK) == SC.OK and not st[2].version:
            self.bad.append({"kind": "ping", "got": "OK without a version"})

    def k_list(self):
        self.expect("list", self.unary(self.vm("List"), self.pb.ListRequest(), self.pb.ListResponse), SC.OK)

    def k_health(self):
        h = self.hpb
        st = self.unary("/grpc.health.v1.Health/Check", h.HealthCheckRequest(service="chv.v1.Vm"),
                        h.HealthCheckResponse)
        if self.expect("health", st, SC.OK) == SC.OK and st[2].status != h.HealthCheckResponse.SERVING:
            self.bad.append({"kind": "health", "got": f"status {st[2].status}"})

    def k_health_unknown(self):
        st = self.unary("/grpc.health.v1.Health/Check", self.hpb.HealthCheckRequest(service="no.such"),
                        self.hpb.HealthCheckResponse)
        self.expect("health_unknown", st, SC.NOT_FOUND, "no.such")

    def k_unknown_vm(self):
        method = self.rng.choice(["Info", "Boot", "Pause", "Resume", "Reboot", "Counters"])
        vid = self.ghost()
        st = self.unary(self.vm(method), self.pb.VmRequest(vm_id=vid))
        self.expect(f"{method.lower()}_unknown", st, SC.NOT_FOUND, vid)

    def k_shutdown_unknown(self):
        vid = self.ghost()
        st = self.unary(self.vm("Shutdown"), self.pb.ShutdownRequest(vm_id=vid, force=True))
        self.expect("shutdown_unknown", st, SC.NOT_FOUND, vid)

    def k_delete_twice(self):
        vid = self.ghost()
        for _ in range(2):
            st = self.unary(self.vm("Delete"), self.pb.DeleteRequest(vm_id=vid))
            self.expect("delete_unknown", st, SC.NOT_FOUND, vid)

    def k_bad_ids(self):
        pb = self.pb
        st = self.unary(self.vm("Info"), pb.VmRequest(vm_id=""))
        self.expect("empty_id", st, SC.INVALID_ARGUMENT, "vm_id")
        st = self.unary(self.vm("Boot"), pb.VmRequest(vm_id="x" * 65))
        self.expect("long_id", st, SC.INVALID_ARGUMENT, "longer than 64")

    def k_bad_creates(self):
        pb = self.pb
        which = self.rng.randrange(4)
        if which == 0:
            st = self.unary(self.vm("Create"), pb.CreateRequest(vm_id="../etc", config=self.config()))
            self.expect("create_bad_id", st, SC.INVALID_ARGUMENT, "../etc")
        elif which == 1:
            st = self.unary(self.vm("Create"), pb.CreateRequest(vm_id=self.ghost()))
            self.expect("create_no_config", st, SC.INVALID_ARGUMENT, "config")
        elif which == 2:
            c = self.config(cpus=pb.CpusConfig(boot_vcpus=300))
            st = self.unary(self.vm("Create"), pb.CreateRequest(vm_id=self.ghost(), config=c))
            self.expect("create_bad_cpus", st, SC.INVALID_ARGUMENT, "300")
        else:
            c = self.config()
            c.payload.kernel = "/nonexistent/chv-kernel"
            st = self.unary(self.vm("Create"), pb.CreateRequest(vm_id=self.ghost(), config=c))
            self.expect("create_no_kernel", st, SC.INVALID_ARGUMENT, "/nonexistent/chv-kernel")

    def k_unknown_method(self):
        st = self.unary("/chv.v1.Vm/Explode", b"", raw=True)
        self.expect("unknown_method", st, SC.UNIMPLEMENTED, "Explode")

    # ---- malformed and oversized ----
    def k_garbage(self):
        method = self.rng.choice(["Create", "Info", "Boot", "Delete", "Shutdown"])
        junk = bytes(self.rng.randrange(256) for _ in range(self.rng.randrange(1, 64)))
        # Field 1 with a 10-byte varint that never ends: never a valid message.
        st = self.unary(self.vm(method), b"\x08" + b"\xff" * 10 + junk, raw=True)
        self.expect("garbage", st, SC.INVALID_ARGUMENT, "does not decode")

    def k_wrong_type(self):
        method = self.rng.choice(["Info", "Boot", "Delete", "Create"])
        # vm_id (field 1, a string) sent as a varint (wire type 0).
        st = self.unary(self.vm(method), b"\x08\x96\x01", raw=True)
        self.expect("wrong_type", st, SC.INVALID_ARGUMENT, "does not decode")

    def k_truncated(self):
        # vm_id announces 100 bytes, 3 follow.
        st = self.unary(self.vm("Info"), b"\x0a\x64abc", raw=True)
        self.expect("truncated", st, SC.INVALID_ARGUMENT, "does not decode")

    def k_oversized(self):
        c = self.config()
        c.payload.cmdline = "x" * (MAX_MESSAGE + 1024)
        st = self.unary(self.vm("Create"), self.pb.CreateRequest(vm_id=self.ghost(), config=c))
        self.expect("oversized", st, SC.RESOURCE_EXHAUSTED)

    # ---- cancelled and abandoned ----
    def stream(self, method, req, resp_cls, timeout):
        return self.channel().unary_stream(method, request_serializer=lambda m: m.SerializeToString(),
                                           response_deserializer=resp_cls.FromString)(req, timeout=timeout)

    def drain(self, it):
        try:
            for _ in it:
                pass
            return SC.OK, ""
        except grpc.RpcError as e:
            return e.code(), e.details() or ""

    def k_watch_deadline(self):
        self.calls += 1
        it = self.stream(self.vm("WatchEvents"), self.pb.WatchEventsRequest(), self.pb.Event, 0.05)
        self.expect("watch_deadline", self.drain(it), SC.DEADLINE_EXCEEDED)

    def k_watch_cancel(self):
        self.calls += 1
        it = self.stream(self.vm("WatchEvents"), self.pb.WatchEventsRequest(), self.pb.Event, 30)
        threading.Timer(0.01 * self.rng.randrange(1, 4), it.cancel).start()
        self.expect("watch_cancel", self.drain(it), SC.CANCELLED)

    def k_health_watch_cancel(self):
        self.calls += 1
        it = self.stream("/grpc.health.v1.Health/Watch", self.hpb.HealthCheckRequest(service=""),
                         self.hpb.HealthCheckResponse, 30)
        first = next(it)  # the current status comes at once
        if first.status != self.hpb.HealthCheckResponse.SERVING:
            self.bad.append({"kind": "health_watch", "got": f"status {first.status}"})
        it.cancel()
        self.expect("health_watch_cancel", self.drain(it), SC.CANCELLED)

    def k_watch_unknown(self):
        self.calls += 1
        vid = self.ghost()
        it = self.stream(self.vm("WatchEvents"), self.pb.WatchEventsRequest(vm_id=vid), self.pb.Event, 30)
        self.expect("watch_unknown", self.drain(it), SC.NOT_FOUND, vid)

    def k_console(self):
        pb = self.pb
        self.calls += 1
        console = self.channel().stream_stream(self.vm("Console"),
                                               request_serializer=lambda m: m.SerializeToString(),
                                               response_deserializer=pb.ConsoleOutput.FromString)
        if self.rng.randrange(2):
            vid = self.ghost()
            st = self.drain(console(iter([pb.ConsoleInput(vm_id=vid)]), timeout=30))
            self.expect("console_unknown", st, SC.NOT_FOUND, vid)
        else:
            st = self.drain(console(iter([pb.ConsoleInput()]), timeout=30))
            self.expect("console_no_id", st, SC.INVALID_ARGUMENT, "vm_id")

    def k_close_channel_mid_stream(self):
        """A connection that goes away under an open stream."""
        self.calls += 1
        ch = grpc.insecure_channel("unix:" + self.sock)
        it = ch.unary_stream(self.vm("WatchEvents"), request_serializer=lambda m: m.SerializeToString(),
                             response_deserializer=self.pb.Event.FromString)(self.pb.WatchEventsRequest(),
                                                                             timeout=30)
        threading.Timer(0.02, ch.close).start()
        self.expect("channel_closed", self.drain(it), SC.CANCELLED)

    def k_raw_garbage(self):
        """Bytes that are not HTTP/2: chvd drops the connection."""
        self.calls += 1
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(10)
        s.connect(self.sock)
        s.sendall(self.rng.choice([b"\x00" * 64, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                                   b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + b"\xff" * 32]))
        code = SC.OK
        try:
            while s.recv(4096):
                pass
        except socket.timeout:
            code = SC.DEADLINE_EXCEEDED  # chvd kept a garbage connection open
        except ConnectionResetError:
            pass
        s.close()
        self.expect("raw_garbage", (code, ""), SC.OK)

    # ---- Create: without KVM the pinned failure, with KVM a whole life ----
    def k_create(self):
        pb = self.pb
        self.vm_seq += 1
        vid = f"load-{self.idx}-{self.vm_seq}"
        st = self.unary(self.vm("Create"), pb.CreateRequest(vm_id=vid, config=self.config()), pb.VmInfo, 60)
        if not self.a.kvm:
            self.expect("create_no_kvm", st, SC[self.a.create_status], self.a.create_detail)
            st = self.unary(self.vm("Info"), pb.VmRequest(vm_id=vid))
            self.expect("info_after_failed_create", st, SC.NOT_FOUND, vid)
            return
        if self.expect("create", st, SC.OK) != SC.OK:
            return
        st = self.unary(self.vm("Shutdown"), pb.ShutdownRequest(vm_id=vid, force=True))
        self.expect("shutdown_not_booted", st, SC.FAILED_PRECONDITION, "Created")
        self.expect("boot", self.unary(self.vm("Boot"), pb.VmRequest(vm_id=vid), timeout=60), SC.OK)
        st = self.unary(self.vm("Boot"), pb.VmRequest(vm_id=vid))
        self.expect("boot_twice", st, SC.FAILED_PRECONDITION, "Running")
        st = self.unary(self.vm("Delete"), pb.DeleteRequest(vm_id=vid))
        self.expect("delete_running", st, SC.FAILED_PRECONDITION, "Running")
        st = self.unary(self.vm("Shutdown"), pb.ShutdownRequest(vm_id=vid, force=True), timeout=60)
        self.expect("shutdown", st, SC.OK)
        self.expect("delete", self.unary(self.vm("Delete"), pb.DeleteRequest(vm_id=vid)), SC.OK)
        st = self.unary(self.vm("Delete"), pb.DeleteRequest(vm_id=vid))
        self.expect("delete_again", st, SC.NOT_FOUND, vid)

    def run(self, budget):
        table = [
            (self.k_ping, 10), (self.k_list, 6), (self.k_health, 3), (self.k_health_unknown, 1),
            (self.k_unknown_vm, 10), (self.k_shutdown_unknown, 3), (self.k_delete_twice, 3),
            (self.k_bad_ids, 2), (self.k_bad_creates, 3), (self.k_unknown_method, 2),
            (self.k_garbage, 4), (self.k_wrong_type, 3), (self.k_truncated, 2),
            (self.k_oversized, 0.15), (self.k_watch_deadline, 1.5), (self.k_watch_cancel, 1.5),
            (self.k_health_watch_cancel, 1), (self.k_watch_unknown, 1), (self.k_console, 2),
            (self.k_close_channel_mid_stream, 0.5), (self.k_raw_garbage, 0.5),
            (self.k_create, self.a.create_weight),
        ]
        fns = [f for f, _ in table]
        weights = [w for _, w in table]
        spent = {}
        while self.calls < budget:
            fn = self.rng.choices(fns, weights)[0]
            t = time.monotonic()
            fn()
            name = fn.__name__[2:]
            spent[name] = spent.get(name, 0) + time.monotonic() - t
            if self.rng.randrange(40) == 0:
                self.reconnect()  # connection churn: fds must come back
        self.reconnect()
        return {"calls": self.calls, "kinds": self.kinds, "bad": self.bad, "spent": spent}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gen")
    ap.add_argument("socket")
    ap.add_argument("--calls", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kernel", default="/nonexistent")
    ap.add_argument("--kvm", action="store_true")
    ap.add_argument("--create-status", default="OK")
    ap.add_argument("--create-detail", default="")
    ap.add_argument("--create-weight", type=float, default=1.0)
    ap.add_argument("--worker", type=int, default=-1, help=argparse.SUPPRESS)
    ap.add_argument("--budget", type=int, default=0, help=argparse.SUPPRESS)
    a = ap.parse_args()

    if a.worker >= 0:
        pb, hpb = load_protos(a.gen)
        print(json.dumps(Client(a, a.worker, pb, hpb).run(a.budget)))
        return 0

    # Separate processes, not threads: real concurrency, and no gRPC state
    # shared across a fork.
    t0 = time.monotonic()
    procs = []
    for i in range(a.clients):
        budget = a.calls // a.clients + (1 if i < a.calls % a.clients else 0)
        cmd = [sys.executable, os.path.abspath(__file__)] + sys.argv[1:] + ["--worker", str(i),
                                                                             "--budget", str(budget)]
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True))
    total, kinds, bad, failed, spent = 0, {}, [], [], {}
    for i, p in enumerate(procs):
        out, _ = p.communicate()
        if p.returncode != 0:
            failed.append(f"client {i} exited with status {p.returncode}")
            continue
        r = json.loads(out.strip().splitlines()[-1])
        total += r["calls"]
        bad += [dict(b, client=i) for b in r["bad"]]
        for k, n in r["kinds"].items():
            kinds[k] = kinds.get(k, 0) + n
        for k, n in r["spent"].items():
            spent[k] = spent.get(k, 0) + n
    summary = {"calls": total, "clients": a.clients, "seconds": round(time.monotonic() - t0, 1),
               "mismatches": len(bad), "kinds": dict(sorted(kinds.items())),
               "client_seconds_by_kind": {k: round(v, 1) for k, v in sorted(spent.items(), key=lambda kv: -kv[1])}, "first_mismatches": bad[:20],
               "client_failures": failed}
    print(json.dumps(summary))
    return 1 if bad or failed or total < a.calls else 0


if __name__ == "__main__":
    sys.exit(main())

/* The daemon benchmarks of issue 3, measured against a running chvd through
 * its gRPC API (bench/api.sh starts the daemon, builds and prints):
 *   api_bench SOCKET KERNEL boot N MIB
 *       N times: Create + Boot, then Counters until the guest's first
 *       debug-port write (debug.first_io_monotonic_ns); latencies in us.
 *   api_bench SOCKET KERNEL hold N MIB CLIENTS CALLS
 *       N hanging VMs: each worker's RSS minus its guest-memory mapping
 *       (/proc/PID/smaps), then CLIENTS threads, each on its own connection,
 *       making CALLS Info calls each; then the VMs are deleted.
 *   api_bench SOCKET KERNEL ramp N MIB THREADS
 *       Create + Boot of up to N VMs from THREADS threads (stops at the first
 *       failure), how many run, the rate; then deletes them all and checks
 *       that no worker process is left.
 * Output: one "key value" line per figure on stdout; progress and errors
 * on stderr. Exit status 1 when a phase could not be measured. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "chv/v1/vm.pb-c.h"
#include "client/rpc_client.h"

#define CALL_TIMEOUT_MS	 60000
#define QUICK_TIMEOUT_MS 10000
#define FIRST_IO_WAIT_NS (20ULL * 1000000000ULL)
#define REAP_WAIT_NS	 (15ULL * 1000000000ULL)
#define MAX_VMS		 2000
#define MAX_THREADS	 64
#define INFO_WARMUP	 20

#define CMDLINE_HANG "chv.checks=boot chv.action=hang"

struct bench {
	const char *socket;
	const char *kernel;
	char target[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	struct rpc_channel *ch; /* shared by the threads of a phase: calls are independent */
};

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void sleep_us(long us)
{
	struct timespec t = {us / 1000000, (us % 1000000) * 1000};
	nanosleep(&t, NULL);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

/* Sorts v; the p-th percentile (nearest rank) in microseconds. */
static double pct_us(uint64_t *v, size_t n, double p, bool sorted)
{
	if (!n)
		return 0;
	if (!sorted)
		qsort(v, n, sizeof(*v), cmp_u64);
	size_t rank = (size_t)(p / 100.0 * (double)n + 0.999999);
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;
	return (double)v[rank - 1] / 1e3;
}

static void print_dist(const char *key, uint64_t *v, size_t n)
{
	double p50 = pct_us(v, n, 50, false);
	printf("%s_p50_us %.1f\n", key, p50);
	printf("%s_p90_us %.1f\n", key, pct_us(v, n, 90, true));
	printf("%s_p99_us %.1f\n", key, pct_us(v, n, 99, true));
	printf("%s_max_us %.1f\n", key, n ? (double)v[n - 1] / 1e3 : 0.0);
	printf("%s_n %zu\n", key, n);
}

/* ---- the calls ---- */

static int unary(struct rpc_channel *ch, const char *method, const ProtobufCMessage *req,
		 const ProtobufCMessageDescriptor *desc, ProtobufCMessage **resp, int timeout_ms,
		 const char *what, const char *id)
{
	struct rpc_result res = {0};
	ProtobufCMessage *m = NULL;
	int r = rpc_call_unary(ch, method, req, desc, &m, timeout_ms, false, &res);
	if (r < 0 || res.status != 0) {
		fprintf(stderr, "api_bench: %s %s: status %d: %s\n", what, id, res.status,
			res.message);
		return r < 0 ? r : -EIO;
	}
	if (resp)
		*resp = m;
	else
		protobuf_c_message_free_unpacked(m, NULL);
	return 0;
}

static int vm_create(struct bench *b, struct rpc_channel *ch, const char *id, const char *cmdline,
		     unsigned mib)
{
	Chv__V1__PayloadConfig payload = CHV__V1__PAYLOAD_CONFIG__INIT;
	payload.kernel = (char *)b->kernel;
	payload.cmdline = (char *)cmdline;
	Chv__V1__CpusConfig cpus = CHV__V1__CPUS_CONFIG__INIT;
	cpus.boot_vcpus = 1;
	Chv__V1__MemoryConfig mem = CHV__V1__MEMORY_CONFIG__INIT;
	mem.size = (uint64_t)mib << 20;
	Chv__V1__VmConfig cfg = CHV__V1__VM_CONFIG__INIT;
	cfg.payload = &payload;
	cfg.cpus = &cpus;
	cfg.memory = &mem;
	Chv__V1__CreateRequest req = CHV__V1__CREATE_REQUEST__INIT;
	req.vm_id = (char *)id;
	req.config = &cfg;
	return unary(ch, "/chv.v1.Vm/Create", &req.base, &chv__v1__vm_info__descriptor, NULL,
		     CALL_TIMEOUT_MS, "Create", id);
}

static int vm_simple(struct rpc_channel *ch, const char *method, const char *id, int timeout_ms,
		     Chv__V1__VmInfo **info)
{
	Chv__V1__VmRequest req = CHV__V1__VM_REQUEST__INIT;
	req.vm_id = (char *)id;
	return unary(ch, method, &req.base, &chv__v1__vm_info__descriptor,
		     (ProtobufCMessage **)info, timeout_ms, strrchr(method, '/') + 1, id);
}

static int vm_delete(struct rpc_channel *ch, const char *id)
{
	Chv__V1__DeleteRequest req = CHV__V1__DELETE_REQUEST__INIT;
	req.vm_id = (char *)id;
	req.force = true;
	return unary(ch, "/chv.v1.Vm/Delete", &req.base, &chv__v1__delete_response__descriptor,
		     NULL, CALL_TIMEOUT_MS, "Delete", id);
}

/* The value of one counter; -ENOENT when the worker does not report it. */
static int vm_counter(struct rpc_channel *ch, const char *id, const char *name, uint64_t *v)
{
	Chv__V1__VmRequest req = CHV__V1__VM_REQUEST__INIT;
	req.vm_id = (char *)id;
	Chv__V1__CountersResponse *c = NULL;
	int r = unary(ch, "/chv.v1.Vm/Counters", &req.base, &chv__v1__counters_response__descriptor,
		      (ProtobufCMessage **)&c, QUICK_TIMEOUT_MS, "Counters", id);
	if (r < 0)
		return r;
	r = -ENOENT;
	for (size_t i = 0; i < c->n_counters; i++) {
		if (strcmp(c->counters[i]->key, name) == 0) {
			*v = c->counters[i]->value;
			r = 0;
		}
	}
	protobuf_c_message_free_unpacked(&c->base, NULL);
	return r;
}

/* Polls until the guest's first debug-port write is recorded; 0 on timeout. */
static uint64_t wait_first_io(struct rpc_channel *ch, const char *id)
{
	uint64_t deadline = now_ns() + FIRST_IO_WAIT_NS;
	while (now_ns() < deadline) {
		uint64_t v = 0;
		int r = vm_counter(ch, id, "debug.first_io_monotonic_ns", &v);
		if (r == -ENOENT) {
			fprintf(stderr,
				"api_bench: %s: the worker reports no "
				"debug.first_io_monotonic_ns counter\n",
				id);
			return 0;
		}
		if (r < 0)
			return 0;
		if (v)
			return v;
		/* Not a busy loop: the worker being measured shares 2 cores with us. */
		sleep_us(200);
	}
	fprintf(stderr, "api_bench: %s: no debug-port write within %llu s\n", id,
		(unsigned long long)(FIRST_IO_WAIT_NS / 1000000000ULL));
	return 0;
}

/* ---- boot: Create + Boot -> first guest instruction ---- */

static int phase_boot(struct bench *b, unsigned n, unsigned mib)
{
	uint64_t *create = calloc(n, sizeof(uint64_t)), *boot = calloc(n, sizeof(uint64_t));
	uint64_t *first = calloc(n, sizeof(uint64_t));
	int ret = 1;
	if (!create || !boot || !first)
		goto out;
	const char *gap = getenv("CHV_BENCH_GAP_MS");
	unsigned gap_ms = gap ? (unsigned)strtoul(gap, NULL, 10) : 0;
	/* One VM first, not counted: the daemon's and the page cache's first use. */
	for (unsigned i = 0; i <= n; i++) {
		char id[32];
		snprintf(id, sizeof(id), "bench-boot-%u", i);
		uint64_t t0 = now_ns();
		if (vm_create(b, b->ch, id, CMDLINE_HANG, mib) < 0)
			goto out;
		uint64_t t1 = now_ns();
		int r = vm_simple(b->ch, "/chv.v1.Vm/Boot", id, CALL_TIMEOUT_MS, NULL);
		uint64_t t2 = now_ns();
		uint64_t f = r < 0 ? 0 : wait_first_io(b->ch, id);
		if (vm_delete(b->ch, id) < 0 || !f)
			goto out;
		/* Optionally let the deleted VM's teardown (KVM's SRCU grace
		 * periods) and chvd's pool refill finish before the next Create:
		 * CHV_BENCH_GAP_MS, default 0 (back to back). */
		if (gap_ms)
			sleep_us(gap_ms * 1000);
		if (f < t0) {
			fprintf(stderr,
				"api_bench: %s: first write %" PRIu64 " before Create %" PRIu64
				"\n",
				id, f, t0);
			goto out;
		}
		if (i == 0)
			continue;
		create[i - 1] = t1 - t0;
		boot[i - 1] = t2 - t1;
		first[i - 1] = f - t0;
	}
	print_dist("create", create, n);
	print_dist("boot", boot, n);
	print_dist("first_io", first, n);
	ret = 0;
out:
	free(create);
	free(boot);
	free(first);
	return ret;
}

/* ---- hold: worker RSS, Info latency under concurrency ---- */

struct smaps_sum {
	uint64_t rss_kb, guest_rss_kb, pss_kb, private_kb;
	/* The largest mappings by name, for the breakdown. */
	struct {
		char name[80];
		uint64_t rss_kb;
	} by_name[64];
	unsigned nnames;
};

static void add_by_name(struct smaps_sum *s, const char *name, uint64_t kb)
{
	for (unsigned i = 0; i < s->nnames; i++) {
		if (strcmp(s->by_name[i].name, name) == 0) {
			s->by_name[i].rss_kb += kb;
			return;
		}
	}
	if (s->nnames < sizeof(s->by_name) / sizeof(s->by_name[0])) {
		snprintf(s->by_name[s->nnames].name, sizeof(s->by_name[0].name), "%s", name);
		s->by_name[s->nnames++].rss_kb = kb;
	}
}

/* Mapping names grouped so the breakdown reads: one line per library,
 * anonymous memory as "[anon]". */
static void map_name(const char *header, char *out, size_t len)
{
	/* addr perms offset dev inode [path] */
	const char *p = header;
	for (int field = 0; field < 5 && *p; field++) {
		while (*p && *p != ' ')
			p++;
		while (*p == ' ')
			p++;
	}
	if (!*p || *p == '\n') {
		snprintf(out, len, "[anon]");
		return;
	}
	snprintf(out, len, "%s", p);
	out[strcspn(out, "\n")] = 0;
	if (strncmp(out, "anon_inode:kvm-vcpu", 19) == 0)
		out[19] = 0;
}

static int read_smaps(pid_t pid, struct smaps_sum *s)
{
	char path[64], line[512], name[80] = "";
	snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f) {
		fprintf(stderr, "api_bench: %s: %s\n", path, strerror(errno));
		return -errno;
	}
	memset(s, 0, sizeof(*s));
	bool guest = false;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long kb;
		/* Mapping headers start with the lower-case hex address; fields
		 * with a capitalised key. */
		if ((line[0] >= '0' && line[0] <= '9') || (line[0] >= 'a' && line[0] <= 'f')) {
			map_name(line, name, sizeof(name));
			guest = strstr(line, "memfd:chv-guest") != NULL;
		} else if (sscanf(line, "Rss: %llu kB", &kb) == 1) {
			s->rss_kb += kb;
			if (guest)
				s->guest_rss_kb += kb;
			else
				add_by_name(s, name, kb);
		} else if (sscanf(line, "Pss: %llu kB", &kb) == 1) {
			if (!guest)
				s->pss_kb += kb;
		} else if (sscanf(line, "Private_Clean: %llu kB", &kb) == 1 ||
			   sscanf(line, "Private_Dirty: %llu kB", &kb) == 1) {
			if (!guest)
				s->private_kb += kb;
		}
	}
	fclose(f);
	return 0;
}

struct info_thread {
	struct bench *b;
	pthread_barrier_t *start;
	char (*ids)[32];
	unsigned nids, calls, index;
	uint64_t *lat; /* calls entries */
	int failed;
};

/* Its own connection, so the clients do not share one HTTP/2 session
 * (channels to the same target would). */
static int own_channel(struct bench *b, struct rpc_channel **ch)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", b->socket);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	struct chv_err err = {0};
	int r = rpc_channel_from_fd(ch, fd, &err);
	if (r < 0)
		fprintf(stderr, "api_bench: %s\n", err.msg);
	return r;
}

static void *info_main(void *arg)
{
	struct info_thread *t = arg;
	struct rpc_channel *ch = NULL;
	t->failed = own_channel(t->b, &ch);
	pthread_barrier_wait(t->start);
	if (t->failed)
		return NULL;
	for (unsigned i = 0; i < INFO_WARMUP + t->calls; i++) {
		const char *id = t->ids[(t->index + i) % t->nids];
		Chv__V1__VmInfo *info = NULL;
		uint64_t t0 = now_ns();
		if (vm_simple(ch, "/chv.v1.Vm/Info", id, QUICK_TIMEOUT_MS, &info) < 0) {
			t->failed = -EIO;
			break;
		}
		uint64_t dt = now_ns() - t0;
		protobuf_c_message_free_unpacked(&info->base, NULL);
		if (i >= INFO_WARMUP)
			t->lat[i - INFO_WARMUP] = dt;
	}
	rpc_channel_close(ch);
	return NULL;
}

static int info_load(struct bench *b, char (*ids)[32], unsigned nids, unsigned clients,
		     unsigned calls)
{
	uint64_t *lat = calloc((size_t)clients * calls, sizeof(uint64_t));
	struct info_thread t[MAX_THREADS];
	pthread_t th[MAX_THREADS];
	pthread_barrier_t start;
	if (!lat || pthread_barrier_init(&start, NULL, clients + 1)) {
		free(lat);
		return 1;
	}
	unsigned started = 0;
	for (; started < clients; started++) {
		t[started] = (struct info_thread){.b = b,
						  .start = &start,
						  .ids = ids,
						  .nids = nids,
						  .calls = calls,
						  .index = started,
						  .lat = lat + (size_t)started * calls};
		if (pthread_create(&th[started], NULL, info_main, &t[started]))
			break;
	}
	if (started < clients) {
		/* The barrier can never open: nothing measured, leave. */
		fprintf(stderr, "api_bench: cannot start client thread %u\n", started);
		exit(1);
	}
	pthread_barrier_wait(&start);
	uint64_t t0 = now_ns();
	int ret = 0;
	for (unsigned i = 0; i < clients; i++) {
		pthread_join(th[i], NULL);
		if (t[i].failed) {
			fprintf(stderr, "api_bench: Info client %u failed: %s\n", i,
				strerror(-t[i].failed));
			ret = 1;
		}
	}
	uint64_t wall = now_ns() - t0;
	pthread_barrier_destroy(&start);
	if (!ret) {
		size_t n = (size_t)clients * calls;
		print_dist("info", lat, n);
		printf("info_clients %u\ninfo_calls_per_s %.0f\n", clients,
		       (double)(n + (size_t)clients * INFO_WARMUP) / ((double)wall / 1e9));
	}
	free(lat);
	return ret;
}

static int phase_hold(struct bench *b, unsigned n, unsigned mib, unsigned clients, unsigned calls)
{
	char(*ids)[32] = calloc(n, sizeof(*ids));
	int ret = 1;
	unsigned made = 0;
	if (!ids)
		return 1;
	for (; made < n; made++) {
		snprintf(ids[made], sizeof(ids[0]), "bench-hold-%u", made);
		if (vm_create(b, b->ch, ids[made], CMDLINE_HANG, mib) < 0)
			goto out;
		if (vm_simple(b->ch, "/chv.v1.Vm/Boot", ids[made], CALL_TIMEOUT_MS, NULL) < 0 ||
		    !wait_first_io(b->ch, ids[made])) {
			made++;
			goto out;
		}
	}
	/* Let every guest reach its final hang: its boot-time pages are then
	 * all touched and its worker quiet. */
	sleep_us(500000);

	uint64_t sum = 0, max = 0, pss = 0, priv = 0, guest = 0;
	struct smaps_sum first = {0};
	for (unsigned i = 0; i < n; i++) {
		Chv__V1__VmInfo *info = NULL;
		if (vm_simple(b->ch, "/chv.v1.Vm/Info", ids[i], QUICK_TIMEOUT_MS, &info) < 0)
			goto out;
		pid_t pid = (pid_t)info->worker_pid;
		bool running = info->state == CHV__V1__VM_STATE__VM_STATE_RUNNING;
		protobuf_c_message_free_unpacked(&info->base, NULL);
		struct smaps_sum s;
		if (!running || pid <= 0) {
			fprintf(stderr, "api_bench: %s is not running (pid %d)\n", ids[i],
				(int)pid);
			goto out;
		}
		if (read_smaps(pid, &s) < 0)
			goto out;
		if (!s.guest_rss_kb && !s.rss_kb) {
			fprintf(stderr, "api_bench: %s: empty smaps for pid %d\n", ids[i],
				(int)pid);
			goto out;
		}
		uint64_t over = s.rss_kb - s.guest_rss_kb;
		sum += over;
		max = over > max ? over : max;
		pss += s.pss_kb;
		priv += s.private_kb;
		guest += s.guest_rss_kb;
		if (i == 0)
			first = s;
	}
	printf("rss_vms %u\nrss_overhead_mean_kb %.1f\nrss_overhead_max_kb %" PRIu64 "\n", n,
	       (double)sum / n, max);
	printf("rss_pss_mean_kb %.1f\nrss_private_mean_kb %.1f\nrss_guest_mean_kb %.1f\n",
	       (double)pss / n, (double)priv / n, (double)guest / n);
	/* The first worker's mappings, largest first. */
	for (unsigned k = 0; k < 10 && k < first.nnames; k++) {
		unsigned best = k;
		for (unsigned j = k + 1; j < first.nnames; j++)
			if (first.by_name[j].rss_kb > first.by_name[best].rss_kb)
				best = j;
		if (best != k) {
			__typeof__(first.by_name[0]) tmp = first.by_name[k];
			first.by_name[k] = first.by_name[best];
			first.by_name[best] = tmp;
		}
		printf("rss_map %" PRIu64 " %s\n", first.by_name[k].rss_kb, first.by_name[k].name);
	}
	ret = info_load(b, ids, n, clients, calls);
out:
	for (unsigned i = 0; i < made; i++)
		if (vm_delete(b->ch, ids[i]) < 0)
			ret = 1;
	free(ids);
	return ret;
}

/* ---- ramp: how many VMs one daemon holds, and how fast they come up ---- */

struct ramp {
	struct bench *b;
	unsigned n, mib;
	unsigned next;	  /* the next index to create, atomically */
	unsigned created; /* of those, booted */
	bool stop;
	pid_t *pids;	/* by index; 0: not created */
	bool *made;	/* by index: Create succeeded (so Delete is due) */
	char fail[600]; /* the first failure */
	pthread_mutex_t lock;
};

static void ramp_fail(struct ramp *r, unsigned i, const char *what)
{
	pthread_mutex_lock(&r->lock);
	if (!r->fail[0])
		snprintf(r->fail, sizeof(r->fail), "VM %u: %s failed (see the message above)", i,
			 what);
	r->stop = true;
	pthread_mutex_unlock(&r->lock);
}

static void *ramp_main(void *arg)
{
	struct ramp *r = arg;
	for (;;) {
		if (__atomic_load_n(&r->stop, __ATOMIC_ACQUIRE))
			break;
		unsigned i = __atomic_fetch_add(&r->next, 1, __ATOMIC_ACQ_REL);
		if (i >= r->n)
			break;
		char id[32];
		snprintf(id, sizeof(id), "bench-ramp-%u", i);
		if (vm_create(r->b, r->b->ch, id, CMDLINE_HANG, r->mib) < 0) {
			ramp_fail(r, i, "Create");
			break;
		}
		r->made[i] = true;
		Chv__V1__VmInfo *info = NULL;
		if (vm_simple(r->b->ch, "/chv.v1.Vm/Boot", id, CALL_TIMEOUT_MS, &info) < 0) {
			ramp_fail(r, i, "Boot");
			break;
		}
		r->pids[i] = (pid_t)info->worker_pid;
		protobuf_c_message_free_unpacked(&info->base, NULL);
		__atomic_fetch_add(&r->created, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

struct del_job {
	struct ramp *r;
	unsigned next, failed;
};

static void *delete_main(void *arg)
{
	struct del_job *d = arg;
	for (;;) {
		unsigned i = __atomic_fetch_add(&d->next, 1, __ATOMIC_ACQ_REL);
		if (i >= d->r->n)
			break;
		if (!d->r->made[i])
			continue;
		char id[32];
		snprintf(id, sizeof(id), "bench-ramp-%u", i);
		if (vm_delete(d->r->b->ch, id) < 0)
			__atomic_fetch_add(&d->failed, 1, __ATOMIC_ACQ_REL);
	}
	return NULL;
}

/* Runs fn on `threads` threads and waits; the seconds it took. */
static double run_threads(unsigned threads, void *(*fn)(void *), void *arg)
{
	pthread_t th[MAX_THREADS];
	unsigned started = 0;
	uint64_t t0 = now_ns();
	for (; started < threads; started++)
		if (pthread_create(&th[started], NULL, fn, arg))
			break;
	if (!started)
		fn(arg);
	for (unsigned i = 0; i < started; i++)
		pthread_join(th[i], NULL);
	return (double)(now_ns() - t0) / 1e9;
}

/* 'Z' for a zombie, another state letter, or 0 when the process is gone. */
static char proc_state(pid_t pid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "re");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* comm may hold spaces */
	return p && p[1] == ' ' ? p[2] : '?';
}

static unsigned count_running(struct bench *b)
{
	Chv__V1__ListRequest req = CHV__V1__LIST_REQUEST__INIT;
	Chv__V1__ListResponse *l = NULL;
	if (unary(b->ch, "/chv.v1.Vm/List", &req.base, &chv__v1__list_response__descriptor,
		  (ProtobufCMessage **)&l, CALL_TIMEOUT_MS, "List", "") < 0)
		return (unsigned)-1;
	unsigned running = 0;
	for (size_t i = 0; i < l->n_vms; i++)
		running += l->vms[i]->state == CHV__V1__VM_STATE__VM_STATE_RUNNING;
	printf("list_vms %zu\n", l->n_vms);
	protobuf_c_message_free_unpacked(&l->base, NULL);
	return running;
}

static int phase_ramp(struct bench *b, unsigned n, unsigned mib, unsigned threads)
{
	struct ramp r = {.b = b, .n = n, .mib = mib};
	r.pids = calloc(n, sizeof(*r.pids));
	r.made = calloc(n, sizeof(*r.made));
	if (!r.pids || !r.made || pthread_mutex_init(&r.lock, NULL))
		return 1;
	double secs = run_threads(threads, ramp_main, &r);
	printf("ramp_target %u\nramp_created %u\nramp_seconds %.3f\nramp_rate_per_s %.1f\n", n,
	       r.created, secs, secs > 0 ? r.created / secs : 0.0);
	printf("ramp_failure %s\n", r.fail[0] ? r.fail : "none");

	/* Held at once: the daemon's view, and the guests' own proof of life. */
	printf("ramp_running_listed %u\n", count_running(b));
	unsigned alive = 0;
	for (unsigned i = 0; i < n; i++) {
		if (!r.pids[i])
			continue;
		char id[32];
		snprintf(id, sizeof(id), "bench-ramp-%u", i);
		uint64_t v = 0;
		if (vm_counter(b->ch, id, "debug.first_io_monotonic_ns", &v) == 0 && v)
			alive++;
	}
	printf("ramp_guests_started %u\n", alive);

	struct del_job d = {.r = &r};
	double del = run_threads(threads, delete_main, &d);
	printf("delete_seconds %.3f\ndelete_failed %u\n", del, d.failed);

	/* chvd reaps its workers from SIGCHLD: give it a moment. */
	unsigned left = 0, zombies = 0;
	uint64_t deadline = now_ns() + REAP_WAIT_NS;
	do {
		left = zombies = 0;
		for (unsigned i = 0; i < n; i++) {
			if (!r.pids[i])
				continue;
			char st = proc_state(r.pids[i]);
			left += st != 0;
			zombies += st == 'Z';
		}
		if (left)
			sleep_us(50000);
	} while (left && now_ns() < deadline);
	printf("workers_left %u\nworkers_zombie %u\n", left, zombies);
	unsigned listed = count_running(b);
	printf("ramp_running_after_delete %u\n", listed);
	free(r.pids);
	free(r.made);
	pthread_mutex_destroy(&r.lock);
	return r.created ? 0 : 1;
}

/* ---- main ---- */

static int number(const char *s, const char *what, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	errno = 0;
	unsigned long v = strtoul(s, &end, 10);
	if (errno || *end || !*s || s[0] == '-' || v < lo || v > hi) {
		fprintf(stderr, "api_bench: %s: \"%s\" is not a number in %u..%u\n", what, s, lo,
			hi);
		return -EINVAL;
	}
	*out = (unsigned)v;
	return 0;
}

static int usage(void)
{
	fputs("usage: api_bench SOCKET KERNEL boot N MIB\n"
	      "       api_bench SOCKET KERNEL hold N MIB CLIENTS CALLS\n"
	      "       api_bench SOCKET KERNEL ramp N MIB THREADS\n",
	      stderr);
	return 2;
}

int main(int argc, char **argv)
{
	if (argc < 6)
		return usage();
	struct bench b = {.socket = argv[1], .kernel = argv[2]};
	const char *phase = argv[3];
	unsigned n, mib, a = 0, c = 0;
	if (strlen(b.socket) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
		fprintf(stderr, "api_bench: socket path %s is too long\n", b.socket);
		return 2;
	}
	if (number(argv[4], "N", 1, MAX_VMS, &n) || number(argv[5], "MIB", 2, 65536, &mib))
		return 2;
	bool boot = strcmp(phase, "boot") == 0, hold = strcmp(phase, "hold") == 0,
	     ramp = strcmp(phase, "ramp") == 0;
	if ((boot && argc != 6) || (hold && argc != 8) || (ramp && argc != 7) ||
	    (!boot && !hold && !ramp))
		return usage();
	if (hold && (number(argv[6], "CLIENTS", 1, MAX_THREADS, &a) ||
		     number(argv[7], "CALLS", 1, 1000000, &c)))
		return 2;
	if (ramp && number(argv[6], "THREADS", 1, MAX_THREADS, &a))
		return 2;
	/* A dead daemon must end the run with an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	snprintf(b.target, sizeof(b.target), "unix:%s", b.socket);
	struct chv_err err = {0};
	if (rpc_channel_open(&b.ch, b.target, &err) < 0) {
		fprintf(stderr, "api_bench: %s\n", err.msg);
		return 1;
	}
	int r = boot   ? phase_boot(&b, n, mib)
		: hold ? phase_hold(&b, n, mib, a, c)
		       : phase_ramp(&b, n, mib, a);
	rpc_channel_close(b.ch);
	return r;
}

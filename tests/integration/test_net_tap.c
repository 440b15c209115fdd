/* A VM's virtio-net over a real tap, without KVM: the VM's own device set-up
 * (vm_virtio_create() from a --net configuration) on a fake hypervisor that
 * records ioeventfds the way KVM registers them, in a private network
 * namespace. A fake guest driver finds the function on PCI, negotiates,
 * sets up its queues through the BAR and kicks them by writing the queue's
 * ioeventfd, as KVM does on the guest's notify write; so every frame goes
 * through the tap chv-vmm opens, the device thread's event loop (queue
 * kicks, the tap's receive watch) and the host's own IPv4 stack.
 *
 * Root, CLONE_NEWNET and /dev/net/tun are needed; without them the program
 * exits 77 (skipped). */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "pci/pci.h"
#include "pci/virtio_pci.h"
#include "virtio/net.h"
#include "vm/config.h"
#include "vm/layout.h"
#include "vm/seccomp.h"
#include "vm/vm_internal.h"

#define TAP	  "chvnt0"
#define HOST_IP	  "10.88.0.1"
#define GUEST_IP  "10.88.0.2"
#define GUEST_MAC "52:54:00:00:88:02"
#define HOST_MAC  "02:00:00:00:88:01"
#define PORT	  4789
#define RAM	  (16ull << 20)
#define QSIZE	  16u
#define RINGS	  0x100000ull /* queue q's rings at RINGS + 0x4000 * q */
#define BUFS	  0x200000ull
#define BUF_LEN	  4096u
#define HDR	  VIRTIO_NET_HDR_LEN
#define WAIT_MS	  5000

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x00, 0x88, 0x02};
static const uint8_t host_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x88, 0x01};

/* ---- the fake hypervisor: what the VM core asks of KVM ---- */

#define MAX_IOEV 64
static struct ioev {
	int fd;
	uint64_t addr;
	int64_t datamatch;
	bool live;
} ioevs[MAX_IOEV];
static unsigned n_irqfd;

static int fake_irq_line(struct hv_vm *vm, uint32_t gsi, bool level)
{
	(void)vm, (void)gsi, (void)level;
	return 0;
}

static int fake_route_msi(struct hv_vm *vm, uint32_t gsi, const struct hv_msi *msi)
{
	(void)vm, (void)gsi, (void)msi;
	return 0;
}

static int fake_irqfd(struct hv_vm *vm, int fd, uint32_t gsi, bool assign)
{
	(void)vm, (void)fd, (void)gsi;
	if (assign)
		n_irqfd++;
	return 0;
}

static int fake_ioeventfd(struct hv_vm *vm, int fd, uint64_t addr, uint32_t len, bool pio,
			  int64_t datamatch, bool assign)
{
	(void)vm;
	if (len != 2 || pio)
		return -EINVAL;
	for (unsigned i = 0; i < MAX_IOEV; i++) {
		struct ioev *e = &ioevs[i];
		if (assign && !e->live) {
			*e = (struct ioev){fd, addr, datamatch, true};
			return 0;
		}
		if (!assign && e->live && e->fd == fd && e->addr == addr) {
			e->live = false;
			return 0;
		}
	}
	return assign ? -ENOSPC : -ENOENT;
}

static const struct hv_ops fake_ops = {
    .name = "fake",
    .irq_line = fake_irq_line,
    .route_msi = fake_route_msi,
    .irqfd = fake_irqfd,
    .ioeventfd = fake_ioeventfd,
};

/* ---- the VM's devices over the fake ---- */

struct t {
	struct vm_config cfg;
	struct vm vm;
	bool pci_ok;
	uint64_t ecam, bar;
	uint32_t common, notify, notify_mul, device;
	uint16_t avail_idx[2], used_seen[2], next_desc[2];
	int host_sock;
};

static bool have_tun;

static uint64_t mmio_rd(struct t *t, uint64_t a, uint32_t len)
{
	uint8_t b[8] = {0};
	assert_true(bus_dispatch(&t->vm.mmio, a, b, len, false));
	uint64_t v = 0;
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static void mmio_wr(struct t *t, uint64_t a, uint32_t len, uint64_t v)
{
	uint8_t b[8];
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	assert_true(bus_dispatch(&t->vm.mmio, a, b, len, true));
}

static uint32_t cfg_rd(struct t *t, uint32_t off, uint32_t len)
{
	return (uint32_t)mmio_rd(t, t->ecam + off, len);
}

static void cfg_wr(struct t *t, uint32_t off, uint32_t len, uint32_t v)
{
	mmio_wr(t, t->ecam + off, len, v);
}

static uint8_t *gpa(struct t *t, uint64_t a)
{
	uint8_t *p = vm_mem_ptr(&t->vm.mem, a, 1);
	assert_non_null(p);
	return p;
}

static uint64_t ring(uint16_t q, unsigned which)
{
	return RINGS + 0x4000ull * q + 0x1000ull * which;
}

/* Builds the VM's device set from chv-vmm's own flags, on the fake. */
static int vm_up(struct t *t, const char *const *args, int nargs, struct chv_err *err)
{
	char *argv[16] = {"chv-vmm"};
	assert_true(nargs < 15);
	for (int i = 0; i < nargs; i++)
		argv[i + 1] = (char *)args[i];
	vm_config_init(&t->cfg);
	assert_int_equal(vm_config_parse_args(&t->cfg, nargs + 1, argv, err), 0);
	t->vm.cfg = &t->cfg;
	t->vm.ops = &fake_ops;
	struct mem_layout l;
	layout_compute(RAM, &l);
	assert_int_equal(vm_mem_create(&t->vm.mem, &l, false, false, err), 0);
	t->vm.mem_ok = true;
	assert_int_equal(bus_init(&t->vm.pio, "pio"), 0);
	assert_int_equal(bus_init(&t->vm.mmio, "mmio"), 0);
	t->vm.pio_ok = t->vm.mmio_ok = true;
	assert_int_equal(vm_pci_create(&t->vm, err), 0);
	t->pci_ok = true;
	return vm_virtio_create(&t->vm, err);
}

/* The VM core's teardown order: stop, off the bus, free. */
static void vm_down(struct t *t)
{
	vm_virtio_stop(&t->vm);
	if (t->pci_ok)
		vm_pci_destroy(&t->vm);
	vm_virtio_destroy(&t->vm);
	bus_destroy(&t->vm.mmio);
	bus_destroy(&t->vm.pio);
	if (t->vm.mem_ok)
		vm_mem_destroy(&t->vm.mem);
	vm_config_free(&t->cfg);
	memset(&t->vm, 0, sizeof(t->vm));
	t->pci_ok = false;
}

/* The capability walk: where the common, notify and device structures are. */
static void walk_caps(struct t *t)
{
	t->common = t->notify = t->device = UINT32_MAX;
	uint8_t at = (uint8_t)cfg_rd(t, PCI_CAPABILITY_LIST, 1);
	for (int steps = 0; at && steps < 48; steps++) {
		if (cfg_rd(t, at, 1) == PCI_CAP_ID_VNDR) {
			uint8_t type = (uint8_t)cfg_rd(t, at + 3u, 1);
			uint32_t off = cfg_rd(t, at + 8u, 4);
			if (type == VIRTIO_PCI_CAP_COMMON_CFG)
				t->common = off;
			else if (type == VIRTIO_PCI_CAP_NOTIFY_CFG) {
				t->notify = off;
				t->notify_mul = cfg_rd(t, at + 16u, 4);
			} else if (type == VIRTIO_PCI_CAP_DEVICE_CFG)
				t->device = off;
		}
		at = (uint8_t)cfg_rd(t, at + 1u, 1);
	}
	assert_int_not_equal(t->common, UINT32_MAX);
	assert_int_not_equal(t->notify, UINT32_MAX);
	assert_int_not_equal(t->device, UINT32_MAX);
}

static uint64_t common_rd(struct t *t, uint32_t off, uint32_t len)
{
	return mmio_rd(t, t->bar + t->common + off, len);
}

static void common_wr(struct t *t, uint32_t off, uint32_t len, uint64_t v)
{
	mmio_wr(t, t->bar + t->common + off, len, v);
}

/* Finds the net function at slot, and drives it to DRIVER_OK with queues 0
 * (receive) and 1 (transmit), accepting `features` of its offer. */
static void driver_init(struct t *t, int slot, uint64_t features)
{
	t->ecam = LAYOUT_ECAM_START + ((uint64_t)slot << 15);
	assert_int_equal(cfg_rd(t, 0, 2), VIRTIO_PCI_VENDOR);
	assert_int_equal(cfg_rd(t, 2, 2), VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_NET);
	t->bar = (cfg_rd(t, PCI_BAR0, 4) & ~0xfull) | (uint64_t)cfg_rd(t, PCI_BAR0 + 4, 4) << 32;
	assert_true(t->bar != 0);
	cfg_wr(t, PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER);
	walk_caps(t);

	common_wr(t, VIRTIO_PCI_COMMON_STATUS, 1, 0);
	common_wr(t, VIRTIO_PCI_COMMON_STATUS, 1, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
	common_wr(t, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t offered = common_rd(t, VIRTIO_PCI_COMMON_DF, 4);
	common_wr(t, VIRTIO_PCI_COMMON_DFSELECT, 4, 1);
	offered |= common_rd(t, VIRTIO_PCI_COMMON_DF, 4) << 32;
	assert_int_equal(features & ~offered, 0);
	common_wr(t, VIRTIO_PCI_COMMON_GFSELECT, 4, 0);
	common_wr(t, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)features);
	common_wr(t, VIRTIO_PCI_COMMON_GFSELECT, 4, 1);
	common_wr(t, VIRTIO_PCI_COMMON_GF, 4, (uint32_t)(features >> 32));
	uint8_t st = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK;
	common_wr(t, VIRTIO_PCI_COMMON_STATUS, 1, st);
	assert_true(common_rd(t, VIRTIO_PCI_COMMON_STATUS, 1) & VIRTIO_STATUS_FEATURES_OK);
	memset(gpa(t, RINGS), 0, 0x8000);
	for (uint16_t q = 0; q < 2; q++) {
		common_wr(t, VIRTIO_PCI_COMMON_Q_SELECT, 2, q);
		common_wr(t, VIRTIO_PCI_COMMON_Q_SIZE, 2, QSIZE);
		common_wr(t, VIRTIO_PCI_COMMON_Q_DESCLO, 8, ring(q, 0));
		common_wr(t, VIRTIO_PCI_COMMON_Q_AVAILLO, 8, ring(q, 1));
		common_wr(t, VIRTIO_PCI_COMMON_Q_USEDLO, 8, ring(q, 2));
		common_wr(t, VIRTIO_PCI_COMMON_Q_ENABLE, 2, 1);
		t->avail_idx[q] = t->used_seen[q] = t->next_desc[q] = 0;
	}
	common_wr(t, VIRTIO_PCI_COMMON_STATUS, 1, st | VIRTIO_STATUS_DRIVER_OK);
	assert_int_equal(common_rd(t, VIRTIO_PCI_COMMON_STATUS, 1), st | VIRTIO_STATUS_DRIVER_OK);
}

/* A kick as KVM delivers it: the eventfd registered for the queue's notify
 * address (datamatch = queue) is signalled; the device thread does the rest. */
static void kick(struct t *t, uint16_t q)
{
	uint64_t addr = t->bar + t->notify + (uint64_t)q * t->notify_mul;
	for (unsigned i = 0; i < MAX_IOEV; i++) {
		if (ioevs[i].live && ioevs[i].addr == addr && ioevs[i].datamatch == q) {
			uint64_t one = 1;
			assert_int_equal(write(ioevs[i].fd, &one, sizeof(one)), sizeof(one));
			return;
		}
	}
	fail_msg("no ioeventfd registered at %#llx for queue %u", (unsigned long long)addr, q);
}

/* One descriptor chain of one buffer, published. */
static void add_buf(struct t *t, uint16_t q, uint64_t addr, uint32_t len, bool writable)
{
	uint16_t d = (uint16_t)(t->next_desc[q]++ % QSIZE);
	uint8_t *p = gpa(t, ring(q, 0) + 16ull * d);
	uint16_t flags = writable ? 2 : 0; /* VRING_DESC_F_WRITE */
	memcpy(p, &addr, 8);
	memcpy(p + 8, &len, 4);
	memcpy(p + 12, &flags, 2);
	memset(p + 14, 0, 2);
	uint8_t *a = gpa(t, ring(q, 1));
	memcpy(a + 4 + 2 * (t->avail_idx[q] % QSIZE), &d, 2);
	t->avail_idx[q]++;
	__atomic_thread_fence(__ATOMIC_RELEASE);
	memcpy(a + 2, &t->avail_idx[q], 2);
}

static uint16_t used_idx(struct t *t, uint16_t q)
{
	uint16_t v;
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	memcpy(&v, gpa(t, ring(q, 2) + 2), 2);
	return v;
}

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

/* Waits for the device to use a new chain of queue q: its head and length. */
static bool next_used(struct t *t, uint16_t q, uint32_t *id, uint32_t *len)
{
	long long end = now_ms() + WAIT_MS;
	while (used_idx(t, q) == t->used_seen[q]) {
		if (now_ms() > end)
			return false;
		usleep(1000);
	}
	const uint8_t *e = gpa(t, ring(q, 2) + 4 + 8ull * (t->used_seen[q] % QSIZE));
	memcpy(id, e, 4);
	memcpy(len, e + 4, 4);
	t->used_seen[q]++;
	return true;
}

static uint16_t csum16(const uint8_t *p, size_t n)
{
	uint32_t s = 0;
	for (size_t i = 0; i + 1 < n; i += 2)
		s += (uint32_t)p[i] << 8 | p[i + 1];
	if (n & 1)
		s += (uint32_t)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return (uint16_t)~s;
}

/* virtio-net header (all zero: no offload), Ethernet, IPv4, UDP: the frame a
 * guest at GUEST_IP sends to HOST_IP:PORT. Returns its length. */
static size_t udp_frame(uint8_t *f, const char *payload)
{
	size_t plen = strlen(payload), ip_len = 20 + 8 + plen;
	memset(f, 0, HDR + 14 + ip_len);
	uint8_t *eth = f + HDR, *ip = eth + 14, *udp = ip + 20;
	memcpy(eth, host_mac, 6);
	memcpy(eth + 6, guest_mac, 6);
	eth[12] = 0x08;
	ip[0] = 0x45;
	ip[2] = (uint8_t)(ip_len >> 8);
	ip[3] = (uint8_t)ip_len;
	ip[8] = 64;
	ip[9] = IPPROTO_UDP;
	inet_pton(AF_INET, GUEST_IP, ip + 12);
	inet_pton(AF_INET, HOST_IP, ip + 16);
	uint16_t c = csum16(ip, 20);
	ip[10] = (uint8_t)(c >> 8);
	ip[11] = (uint8_t)c;
	udp[0] = PORT >> 8;
	udp[1] = PORT & 0xff;
	udp[2] = PORT >> 8;
	udp[3] = PORT & 0xff;
	udp[4] = (uint8_t)((8 + plen) >> 8);
	udp[5] = (uint8_t)(8 + plen);
	memcpy(udp + 8, payload, plen); /* UDP checksum 0: none (IPv4) */
	return HDR + 14 + ip_len;
}

static void counter_cb(void *ctx, const char *name, uint64_t v)
{
	struct {
		const char *want;
		uint64_t v;
		bool found;
	} *c = ctx;
	if (strcmp(name, c->want) == 0) {
		c->v = v;
		c->found = true;
	}
}

static uint64_t counter(struct t *t, const char *name)
{
	struct {
		const char *want;
		uint64_t v;
		bool found;
	} c = {name, 0, false};
	vm_virtio_counters(&t->vm, counter_cb, &c);
	if (!c.found)
		fail_msg("no counter %s", name);
	return c.v;
}

static void tap_state(const char *name, uint8_t mac[6], int *mtu, bool *up)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", name);
	assert_int_equal(ioctl(s, SIOCGIFHWADDR, &ifr), 0);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	assert_int_equal(ioctl(s, SIOCGIFMTU, &ifr), 0);
	*mtu = ifr.ifr_mtu;
	assert_int_equal(ioctl(s, SIOCGIFFLAGS, &ifr), 0);
	*up = ifr.ifr_flags & IFF_UP;
	close(s);
}

/* The guest's IP answers to its MAC, without ARP. */
static void static_neighbour(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct arpreq r;
	memset(&r, 0, sizeof(r));
	struct sockaddr_in *pa = (struct sockaddr_in *)&r.arp_pa;
	pa->sin_family = AF_INET;
	inet_pton(AF_INET, GUEST_IP, &pa->sin_addr);
	r.arp_ha.sa_family = ARPHRD_ETHER;
	memcpy(r.arp_ha.sa_data, guest_mac, 6);
	r.arp_flags = ATF_COM | ATF_PERM;
	snprintf(r.arp_dev, sizeof(r.arp_dev), "%s", TAP);
	assert_int_equal(ioctl(s, SIOCSARP, &r), 0);
	close(s);
}

static int udp_socket(void)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(s >= 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(PORT)};
	inet_pton(AF_INET, HOST_IP, &a.sin_addr);
	assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	return s;
}

/* Threads of this process under a seccomp filter (Seccomp: 2). */
static int filtered_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	assert_non_null(d);
	int n = 0;
	for (struct dirent *e; (e = readdir(d));) {
		char path[64], line[128];
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%.20s/status", e->d_name);
		FILE *f = fopen(path, "re");
		while (f && fgets(line, sizeof(line), f))
			if (strcmp(line, "Seccomp:\t2\n") == 0)
				n++;
		if (f)
			fclose(f);
	}
	closedir(d);
	return n;
}

/* Frames both ways through the tap that vm_virtio_create() opened from
 * --net, with the host side configured from the same flags. */
static void exchange(struct t *t, bool seccomp)
{
	struct chv_err err = {0};
	const char *args[] = {"--kernel", "/unused", "--net",
			      "tap=" TAP ",ip=" HOST_IP ",mask=255.255.255.0,mac=" GUEST_MAC
			      ",host_mac=" HOST_MAC ",mtu=1400,id=eth0"};
	/* The device thread runs under its real filter when asked (it reads
	 * the mode when it starts; teardown resets it). */
	chv_seccomp_set_mode(seccomp ? SECCOMP_TRUE : SECCOMP_FALSE);
	if (vm_up(t, args, 4, &err) < 0)
		fail_msg("vm_virtio_create: %s", err.msg);

	/* The host side: named, addressed, with host_mac and mtu, up. */
	uint8_t mac[6];
	int mtu;
	bool up;
	assert_true(if_nametoindex(TAP) > 0);
	tap_state(TAP, mac, &mtu, &up);
	assert_memory_equal(mac, host_mac, 6);
	assert_int_equal(mtu, 1400);
	assert_true(up);

	/* Slot 2: rng at 1, no disks, no console. The guest reads its MAC and
	 * MTU from the device configuration. */
	const uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC |
			   1ull << VIRTIO_NET_F_MTU | 1ull << VIRTIO_NET_F_STATUS;
	driver_init(t, 2, f);
	for (int i = 0; i < 6; i++)
		assert_int_equal(mmio_rd(t, t->bar + t->device + VIRTIO_NET_CFG_MAC + i, 1),
				 guest_mac[i]);
	assert_int_equal(mmio_rd(t, t->bar + t->device + VIRTIO_NET_CFG_MTU, 2), 1400);

	/* Guest to host: a UDP datagram reaches a host socket. */
	int s = udp_socket();
	uint8_t *tx = gpa(t, BUFS);
	size_t n = udp_frame(tx, "guest says hello");
	add_buf(t, 1, BUFS, (uint32_t)n, false);
	kick(t, 1);
	struct pollfd pfd = {.fd = s, .events = POLLIN};
	assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
	char got[64] = {0};
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	assert_int_equal(recvfrom(s, got, sizeof(got) - 1, 0, (struct sockaddr *)&from, &fl), 16);
	assert_string_equal(got, "guest says hello");
	char fromip[INET_ADDRSTRLEN];
	inet_ntop(AF_INET, &from.sin_addr, fromip, sizeof(fromip));
	assert_string_equal(fromip, GUEST_IP);
	uint32_t id, len;
	assert_true(next_used(t, 1, &id, &len));
	assert_int_equal(id, 0);

	/* Host to guest: the datagram lands in a receive buffer, intact. The
	 * host may send other frames first (IPv6 neighbour discovery): the
	 * guest looks at each. */
	for (uint16_t i = 0; i < QSIZE; i++)
		add_buf(t, 0, BUFS + BUF_LEN * (1u + i), BUF_LEN, true);
	kick(t, 0);
	static_neighbour();
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(PORT + 1)};
	inet_pton(AF_INET, GUEST_IP, &to.sin_addr);
	/* The kick has long been served when the datagrams come: they reach
	 * the guest only through the loop's watch on the tap. */
	usleep(200 * 1000);
	static const char *const msgs[] = {"host says hello", "and again, unkicked"};
	for (int m = 0; m < 2; m++) {
		size_t ml = strlen(msgs[m]);
		assert_int_equal(sendto(s, msgs[m], ml, 0, (struct sockaddr *)&to, sizeof(to)),
				 (ssize_t)ml);
		bool found = false;
		for (unsigned tries = 0; !found && tries < QSIZE; tries++) {
			if (!next_used(t, 0, &id, &len))
				break;
			assert_true(id < QSIZE && len <= BUF_LEN);
			const uint8_t *fr = gpa(t, BUFS + BUF_LEN * (1u + id));
			const uint8_t *eth = fr + HDR, *ip = eth + 14, *udp = ip + 20;
			if (len < HDR + 14 + 28 || eth[12] != 0x08 || eth[13] != 0 ||
			    ip[9] != IPPROTO_UDP)
				continue;
			assert_memory_equal(eth, guest_mac, 6);
			assert_memory_equal(eth + 6, host_mac, 6);
			assert_int_equal(udp[2] << 8 | udp[3], PORT + 1);
			assert_int_equal(len, HDR + 14 + 28 + ml);
			assert_memory_equal(udp + 8, msgs[m], ml);
			found = true;
		}
		if (!found)
			fail_msg("\"%s\" did not reach the guest", msgs[m]);
	}
	close(s);

	if (seccomp)
		assert_int_equal(filtered_threads(), 1); /* the device thread */

	/* What the Counters RPC reports for the device (the device thread
	 * counts a frame just after writing it: the last one may lag). */
	long long end = now_ms() + WAIT_MS;
	while ((counter(t, "virtio.net0.rx_packets") < 2 ||
		counter(t, "virtio.net0.tx_packets") < 1) &&
	       now_ms() < end)
		usleep(1000);
	assert_true(counter(t, "virtio.net0.tx_packets") >= 1);
	assert_true(counter(t, "virtio.net0.tx_bytes") >= n - HDR);
	assert_true(counter(t, "virtio.net0.rx_packets") >= 1);
	assert_true(counter(t, "virtio.net0.rx_packets") >= 2);
	assert_true(counter(t, "virtio.net0.rx_bytes") >= 14 + 28 + strlen(msgs[1]));
	assert_true(counter(t, "virtio.net0.notifications") >= 2);
	assert_int_equal(counter(t, "virtio.net0.tx_errors"), 0);
	assert_int_equal(counter(t, "virtio.net0.rx_errors"), 0);

	/* Teardown closes the tap chv-vmm created: the interface goes. */
	vm_down(t);
	assert_int_equal(if_nametoindex(TAP), 0);
}

static void test_exchange(void **state)
{
	exchange(*state, false);
}

/* The same with the device thread under its seccomp filter (a missing
 * system call kills the program). */
static void test_exchange_seccomp(void **state)
{
	exchange(*state, true);
}

/* A rate_limit_group on the device: two frames pass at once, the rest wait
 * for the bucket's refill, which only the loop's watch on the limiter's
 * timer brings (nothing kicks the queue again). */
static void test_rate_limited_tx(void **state)
{
	struct t *t = *state;
	struct chv_err err = {0};
	const char *args[] = {"--kernel",
			      "/unused",
			      "--rate-limit-group",
			      "id=slow,ops_size=2,ops_refill_time=600",
			      "--net",
			      "tap=" TAP ",ip=" HOST_IP ",mask=255.255.255.0,mac=" GUEST_MAC
			      ",host_mac=" HOST_MAC ",rate_limit_group=slow"};
	if (vm_up(t, args, 6, &err) < 0)
		fail_msg("vm_virtio_create: %s", err.msg);
	driver_init(t, 2, 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC);
	int s = udp_socket();
	enum { FRAMES = 5 };
	for (int i = 0; i < FRAMES; i++) {
		char msg[16];
		snprintf(msg, sizeof(msg), "frame %d", i);
		uint64_t at = BUFS + BUF_LEN * (uint64_t)i;
		add_buf(t, 1, at, (uint32_t)udp_frame(gpa(t, at), msg), false);
	}
	long long t0 = now_ms();
	kick(t, 1);
	long long when[FRAMES];
	for (int i = 0; i < FRAMES; i++) {
		struct pollfd pfd = {.fd = s, .events = POLLIN};
		assert_int_equal(poll(&pfd, 1, WAIT_MS), 1);
		char got[16] = {0}, want[16];
		assert_int_equal(recv(s, got, sizeof(got) - 1, 0), 7);
		snprintf(want, sizeof(want), "frame %d", i);
		assert_string_equal(got, want); /* in order, none lost */
		when[i] = now_ms() - t0;
	}
	close(s);
	/* The bucket starts full (2); then one token per 300 ms: the last
	 * three frames need 900 ms more than the first two. */
	if (when[2] - when[1] < 150 || when[4] - when[1] < 700)
		fail_msg("frames at %lld, %lld, %lld, %lld, %lld ms: not limited", when[0], when[1],
			 when[2], when[3], when[4]);
	assert_true(counter(t, "virtio.net0.tx_throttled") >= 1);
	assert_true(counter(t, "ratelimit.slow.throttled") >= 1);
	assert_true(counter(t, "ratelimit.slow.wakeups") >= 1);
	/* Counted by the device thread just after it wrote the frame. */
	long long end = now_ms() + WAIT_MS;
	while (counter(t, "virtio.net0.tx_packets") < FRAMES && now_ms() < end)
		usleep(1000);
	assert_int_equal(counter(t, "virtio.net0.tx_packets"), FRAMES);
	vm_down(t);
}

/* A kernel-named tap and a second device: slots follow the console. */
static void test_two_nets_slots(void **state)
{
	struct t *t = *state;
	struct chv_err err = {0};
	const char *args[] = {"--kernel",  "/k",
			      "--cpus",	   "boot=2",
			      "--console", "null",
			      "--net",	   "num_queues=4,mac=52:54:00:00:00:01",
			      "--net",	   "tap=chvnt9,offload_csum=off"};
	if (vm_up(t, args, 10, &err) < 0)
		fail_msg("vm_virtio_create: %s", err.msg);
	/* rng 1, console 2, nets 3 and 4 */
	t->ecam = LAYOUT_ECAM_START + (3ull << 15);
	assert_int_equal(cfg_rd(t, 2, 2), VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_NET);
	t->ecam = LAYOUT_ECAM_START + (4ull << 15);
	assert_int_equal(cfg_rd(t, 2, 2), VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_NET);
	t->ecam = LAYOUT_ECAM_START + (2ull << 15);
	assert_int_equal(cfg_rd(t, 2, 2), VIRTIO_PCI_DEVICE_BASE + VIRTIO_ID_CONSOLE);
	assert_true(if_nametoindex("chvnt9") > 0);
	/* The first device has two pairs and a control queue; the second offers
	 * no checksum offload. */
	t->ecam = LAYOUT_ECAM_START + (3ull << 15);
	t->bar = (cfg_rd(t, PCI_BAR0, 4) & ~0xfull) | (uint64_t)cfg_rd(t, PCI_BAR0 + 4, 4) << 32;
	walk_caps(t);
	assert_int_equal(common_rd(t, VIRTIO_PCI_COMMON_NUMQ, 2), 5);
	t->ecam = LAYOUT_ECAM_START + (4ull << 15);
	t->bar = (cfg_rd(t, PCI_BAR0, 4) & ~0xfull) | (uint64_t)cfg_rd(t, PCI_BAR0 + 4, 4) << 32;
	walk_caps(t);
	common_wr(t, VIRTIO_PCI_COMMON_DFSELECT, 4, 0);
	uint64_t f = common_rd(t, VIRTIO_PCI_COMMON_DF, 4);
	assert_int_equal(f & (1u << VIRTIO_NET_F_CSUM | 1u << VIRTIO_NET_F_GUEST_CSUM |
			      1u << VIRTIO_NET_F_HOST_TSO4),
			 0);
	assert_true(f & 1u << VIRTIO_NET_F_MAC);
	vm_down(t);
	assert_int_equal(if_nametoindex("chvnt9"), 0);
}

/* A tap that cannot be used fails the build with --net named, and the
 * half-built device set tears down cleanly (ASan checks). */
static void test_bad_fd(void **state)
{
	struct t *t = *state;
	struct chv_err err = {0};
	int fd = open("/dev/null", O_RDWR | O_CLOEXEC);
	assert_true(fd > 2);
	char spec[32];
	snprintf(spec, sizeof(spec), "fd=%d", fd);
	const char *args[] = {"--kernel", "/k", "--net", spec};
	assert_true(vm_up(t, args, 4, &err) < 0);
	assert_non_null(strstr(err.msg, "--net: fd="));
	assert_non_null(strstr(err.msg, "is not a tap device"));
	vm_down(t);
	close(fd);
}

static int setup(void **state)
{
	struct t *t = calloc(1, sizeof(*t));
	if (!t)
		return -1;
	memset(ioevs, 0, sizeof(ioevs));
	*state = t;
	return 0;
}

static int teardown(void **state)
{
	struct t *t = *state;
	if (t->vm.cfg) /* a failed test left its VM */
		vm_down(t);
	chv_seccomp_set_mode(SECCOMP_FALSE);
	free(t);
	return 0;
}

int main(void)
{
	if (geteuid() != 0 || unshare(CLONE_NEWNET) < 0) {
		fprintf(stderr, "test_net_tap: needs root and network namespaces: skipped\n");
		return 77;
	}
	int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	have_tun = fd >= 0;
	if (fd >= 0)
		close(fd);
	if (!have_tun) {
		fprintf(stderr, "test_net_tap: no /dev/net/tun: skipped\n");
		return 77;
	}
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exchange, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_exchange_seccomp, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_rate_limited_tx, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_two_nets_slots, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_bad_fd, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}

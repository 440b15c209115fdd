/* The net kinds of chv.bench (needs chv.net=GUEST_IP,PEER_IP,PORT), against
 * bench/net_peer_bench.py on the host:
 *   net-tx  the guest sends UDP datagrams of the link's MTU (at most 1500
 *           bytes of IP) to PEER:PORT with every free transmit slot in flight;
 *   net-rx  the host sends them and the guest counts what arrives.
 * The exchange: the guest resolves PEER by ARP, sends "chv-bench hello KIND
 * SECONDS" (again every second) until the peer answers "chv-bench go"; the
 * run follows, then the guest sends "chv-bench end OPS BYTES" a few times
 * (the peer stops on it and prints what it counted). ARP requests for
 * GUEST_IP are answered throughout.
 *
 * ops are datagrams (net-tx: taken by the device; net-rx: received whole and
 * well-formed), bytes their UDP payload. net-rx times from the first data
 * datagram to the last one counted. Data frames go without a UDP checksum
 * (0: none, legal in IPv4) so the guest's cost per frame stays small; IPv4
 * header checksums are checked on receive. Runs at CPL3. */
#include "guest.h"
#include "wire.h"

#define VIRTIO_ID_NET  1
#define NET_F_MTU      3
#define NET_F_MAC      5
#define NET_CFG_MTU    10
#define NET_HDR_LEN    12
#define NET_BUF	       2048
#define RXQ	       0
#define TXQ	       1
#define SETUP_MS       30000 /* ARP and hello until "go" */
#define FIRST_DATA_MS  10000 /* net-rx: "go" until the first data */
#define STALL_MS       2000
#define ARP_EVERY_MS   500
#define HELLO_EVERY_MS 1000
#define END_SENDS      3
#define END_EVERY_MS   100
#define ETH_ALEN       6
#define ETH_HLEN       14
#define ETH_ZLEN       60
#define ETH_P_IP       0x0800
#define ETH_P_ARP      0x0806
#define IP_HLEN	       20
#define UDP_HLEN       8
#define HDRS	       (ETH_HLEN + IP_HLEN + UDP_HLEN)
#define PROTO_UDP      17
#define MSG_DATA       "chv-bench data"
#define MSG_GO	       "chv-bench go"

static uint8_t rx_ring[4096] __attribute__((aligned(4096)));
static uint8_t tx_ring[4096] __attribute__((aligned(4096)));
static uint8_t rx_buf[VIRTQ_MAX][NET_BUF] __attribute__((aligned(4096)));
static uint8_t tx_buf[VIRTQ_MAX][NET_BUF] __attribute__((aligned(4096)));

struct net_bench {
	const struct options *o;
	struct virtq *rx, *tx;
	uint64_t tsc_per_ms;
	uint8_t mac[ETH_ALEN], peer_mac[ETH_ALEN];
	uint32_t mtu, payload; /* IP MTU; data payload bytes */
	bool have_peer, go, started, counting;
	bool busy[VIRTQ_MAX];
	unsigned ctl;	     /* the transmit slot for everything but data: the last */
	unsigned data_slots; /* 0 .. ctl - 1 */
	unsigned inflight;
	uint64_t resend_until; /* net-tx: data slots are sent again until this TSC */
	uint64_t last;	       /* TSC of the last counted completion or datagram */
	uint64_t rx_bad, rx_other;
	struct bench_result res;
};

/* The checksum of p[0..n) continuing the one-complement sum s. */
static uint16_t csum(uint32_t s, const uint8_t *p, size_t n)
{
	return sum_fold(sum_add(s, p, n));
}

static bool past(uint64_t t)
{
	return (int64_t)(rdtsc() - t) >= 0;
}

static void fail(struct net_bench *b, const char *why)
{
	if (!b->res.why[0])
		ksnprintf(b->res.why, sizeof(b->res.why), "%s", why);
	b->res.errors++;
}

/* A UDP/IPv4 frame to the peer in transmit slot i with n bytes of payload
 * that start with msg (the rest is what the buffer holds); returns its
 * length. The UDP checksum is computed when sum is set. */
static size_t build_udp(struct net_bench *b, unsigned i, const char *msg, size_t n, bool sum)
{
	const struct options *o = b->o;
	uint8_t *f = tx_buf[i] + NET_HDR_LEN, *ip = f + ETH_HLEN, *u = ip + IP_HLEN;
	memcpy(f, b->peer_mac, ETH_ALEN);
	memcpy(f + ETH_ALEN, b->mac, ETH_ALEN);
	put16(f + 12, ETH_P_IP);
	size_t mn = strlen(msg);
	memcpy(u + UDP_HLEN, msg, mn < n ? mn : n);
	uint16_t ulen = (uint16_t)(UDP_HLEN + n);
	put16(u, o->net_port);
	put16(u + 2, o->net_port);
	put16(u + 4, ulen);
	put16(u + 6, 0);
	if (sum) {
		uint8_t ph[12];
		put32(ph, o->net_ip);
		put32(ph + 4, o->net_peer);
		ph[8] = 0;
		ph[9] = PROTO_UDP;
		put16(ph + 10, ulen);
		uint16_t s = csum(~csum(0, ph, sizeof(ph)) & 0xffff, u, ulen);
		put16(u + 6, s ? s : 0xffff);
	}
	memset(ip, 0, IP_HLEN);
	ip[0] = 0x45;
	put16(ip + 2, (uint16_t)(IP_HLEN + ulen));
	put16(ip + 6, 0x4000); /* DF: the id may stay 0 (RFC 6864) */
	ip[8] = 64;
	ip[9] = PROTO_UDP;
	put32(ip + 12, o->net_ip);
	put32(ip + 16, o->net_peer);
	put16(ip + 10, csum(0, ip, IP_HLEN));
	return ETH_HLEN + IP_HLEN + ulen;
}

/* Hands transmit slot i (len bytes of frame after the header) to the device. */
static void tx_post(struct net_bench *b, unsigned i, size_t len)
{
	if (len < ETH_ZLEN) {
		memset(tx_buf[i] + NET_HDR_LEN + len, 0, ETH_ZLEN - len);
		len = ETH_ZLEN;
	}
	memset(tx_buf[i], 0, NET_HDR_LEN);
	b->tx->desc[i].addr = (uint64_t)(uintptr_t)tx_buf[i];
	b->tx->desc[i].len = (uint32_t)(NET_HDR_LEN + len);
	b->tx->desc[i].flags = 0;
	b->tx->desc[i].next = 0;
	b->busy[i] = true;
	virtq_publish(b->tx, (uint16_t)i);
}

/* Takes transmit completions; data slots are counted and, until
 * resend_until, sent again at once. */
static void tx_reap(struct net_bench *b)
{
	bool resubmit = b->resend_until && !past(b->resend_until);
	uint32_t id, len;
	bool any = false;
	while (virtq_used_pop(b->tx, &id, &len)) {
		if (id >= b->tx->size || !b->busy[id]) {
			fail(b, "transmit: the used ring returned a descriptor not in flight");
			return;
		}
		b->busy[id] = false;
		if (id == b->ctl)
			continue;
		b->inflight--;
		if (b->counting) {
			b->res.ops++;
			b->res.bytes += b->payload;
			b->last = rdtsc();
		}
		if (resubmit) {
			tx_post(b, id, HDRS + b->payload);
			b->inflight++;
			any = true;
		}
	}
	if (any)
		virtq_kick(b->tx);
}

static void send_ctl(struct net_bench *b, size_t len)
{
	tx_post(b, b->ctl, len);
	virtq_kick(b->tx);
}

/* Waits until the device has returned the control slot's last frame. */
static bool ctl_free(struct net_bench *b)
{
	uint64_t end = rdtsc() + STALL_MS * b->tsc_per_ms;
	while (b->busy[b->ctl]) {
		tx_reap(b);
		if (past(end)) {
			fail(b, "transmit: the device kept a frame for 2000 ms");
			return false;
		}
		__asm__ volatile("pause");
	}
	return !b->res.why[0];
}

static void send_arp(struct net_bench *b, uint16_t op, const uint8_t *dst, uint32_t tpa)
{
	static const uint8_t bcast[ETH_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	if (!ctl_free(b))
		return;
	uint8_t *f = tx_buf[b->ctl] + NET_HDR_LEN, *a = f + ETH_HLEN;
	memcpy(f, dst ? dst : bcast, ETH_ALEN);
	memcpy(f + ETH_ALEN, b->mac, ETH_ALEN);
	put16(f + 12, ETH_P_ARP);
	put16(a, 1);
	put16(a + 2, ETH_P_IP);
	a[4] = ETH_ALEN;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, b->mac, ETH_ALEN);
	put32(a + 14, b->o->net_ip);
	if (dst)
		memcpy(a + 18, dst, ETH_ALEN);
	else
		memset(a + 18, 0, ETH_ALEN);
	put32(a + 24, tpa);
	send_ctl(b, ETH_HLEN + 28);
}

static void send_msg(struct net_bench *b, const char *msg)
{
	if (ctl_free(b))
		send_ctl(b, build_udp(b, b->ctl, msg, strlen(msg), true));
}

static void on_arp(struct net_bench *b, const uint8_t *a, size_t n)
{
	if (n < 28 || get16(a) != 1 || get16(a + 2) != ETH_P_IP || a[4] != ETH_ALEN || a[5] != 4)
		return;
	uint16_t op = get16(a + 6);
	if (get32(a + 14) == b->o->net_peer && (op == 1 || op == 2)) {
		memcpy(b->peer_mac, a + 8, ETH_ALEN);
		b->have_peer = true;
	}
	if (op == 1 && get32(a + 24) == b->o->net_ip) {
		uint8_t sha[ETH_ALEN];
		memcpy(sha, a + 8, ETH_ALEN);
		send_arp(b, 2, sha, get32(a + 14));
	}
}

static bool has_prefix(const uint8_t *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && !memcmp(p, lit, l);
}

static void on_frame(struct net_bench *b, const uint8_t *f, size_t n)
{
	if (n < ETH_HLEN)
		goto bad;
	uint16_t type = get16(f + 12);
	if (type == ETH_P_ARP) {
		on_arp(b, f + ETH_HLEN, n - ETH_HLEN);
		return;
	}
	if (type != ETH_P_IP) {
		b->rx_other++;
		return;
	}
	const uint8_t *ip = f + ETH_HLEN;
	if (n < HDRS || ip[0] != 0x45 || csum(0, ip, IP_HLEN))
		goto bad;
	uint16_t total = get16(ip + 2);
	if (total > n - ETH_HLEN || total < IP_HLEN + UDP_HLEN)
		goto bad;
	const uint8_t *u = ip + IP_HLEN;
	if (ip[9] != PROTO_UDP || get32(ip + 16) != b->o->net_ip ||
	    get32(ip + 12) != b->o->net_peer || get16(u + 2) != b->o->net_port) {
		b->rx_other++;
		return;
	}
	uint16_t ulen = get16(u + 4);
	if (ulen != total - IP_HLEN)
		goto bad;
	const uint8_t *p = u + UDP_HLEN;
	size_t pn = ulen - UDP_HLEN;
	if (has_prefix(p, pn, MSG_GO)) {
		b->go = true;
	} else if (has_prefix(p, pn, MSG_DATA)) {
		if (b->counting) {
			b->res.ops++;
			b->res.bytes += pn;
			b->last = rdtsc();
		} else if (b->o->bench_kind == BENCH_NET_RX && b->go && !b->started) {
			/* The first datagram starts the clock; those after it count. */
			b->started = b->counting = true;
			b->last = rdtsc();
		}
	} else {
		b->rx_other++;
	}
	return;
bad:
	b->rx_bad++;
}

static void rx_give(struct virtq *vq, uint16_t i)
{
	vq->desc[i].addr = (uint64_t)(uintptr_t)rx_buf[i];
	vq->desc[i].len = NET_BUF;
	vq->desc[i].flags = VIRTQ_DESC_F_WRITE;
	vq->desc[i].next = 0;
	virtq_publish(vq, i);
}

/* Handles what has arrived and gives the buffers back. */
static void rx_poll(struct net_bench *b)
{
	uint32_t id, len;
	bool any = false;
	while (virtq_used_pop(b->rx, &id, &len)) {
		if (id >= b->rx->size || len < NET_HDR_LEN || len > NET_BUF) {
			fail(b, "receive: a used entry with a bad id or length");
			return;
		}
		on_frame(b, rx_buf[id] + NET_HDR_LEN, len - NET_HDR_LEN);
		rx_give(b->rx, (uint16_t)id);
		any = true;
	}
	if (any)
		virtq_kick(b->rx);
}

/* ARP for the peer, then hello until "go". */
static bool handshake(struct net_bench *b)
{
	char hello[48];
	ksnprintf(hello, sizeof(hello), "chv-bench hello %s %u", bench_kind_name(b->o->bench_kind),
		  b->o->bench_seconds);
	uint64_t end = rdtsc() + SETUP_MS * b->tsc_per_ms, next = rdtsc();
	while (!b->go && !b->res.why[0]) {
		if (past(end)) {
			fail(b, b->have_peer ? "no \"chv-bench go\" from the peer within 30 s"
					     : "no ARP reply from the peer within 30 s");
			return false;
		}
		if (past(next)) {
			if (b->have_peer)
				send_msg(b, hello);
			else
				send_arp(b, 1, NULL, b->o->net_peer);
			next = rdtsc() +
			       (b->have_peer ? HELLO_EVERY_MS : ARP_EVERY_MS) * b->tsc_per_ms;
		}
		rx_poll(b);
		tx_reap(b);
		__asm__ volatile("pause");
	}
	return !b->res.why[0];
}

static void run_tx(struct net_bench *b)
{
	for (unsigned i = 0; i < b->data_slots; i++)
		build_udp(b, i, MSG_DATA, b->payload, false);
	b->counting = true;
	uint64_t start = rdtsc();
	b->last = start;
	b->resend_until = start + b->o->bench_seconds * 1000 * b->tsc_per_ms;
	for (unsigned i = 0; i < b->data_slots; i++) {
		tx_post(b, i, HDRS + b->payload);
		b->inflight++;
	}
	virtq_kick(b->tx);
	while (b->inflight && !b->res.why[0]) {
		tx_reap(b);
		rx_poll(b);
		if (past(b->last + STALL_MS * b->tsc_per_ms)) {
			fail(b, "transmit: no frame taken for 2000 ms");
			break;
		}
		__asm__ volatile("pause");
	}
	b->res.cycles = b->last - start;
	b->counting = false;
}

static void run_rx(struct net_bench *b)
{
	uint64_t first = rdtsc() + FIRST_DATA_MS * b->tsc_per_ms;
	while (!b->counting && !b->res.why[0]) {
		if (past(first)) {
			fail(b, "no data from the peer within 10 s of \"go\"");
			return;
		}
		rx_poll(b);
		tx_reap(b);
		__asm__ volatile("pause");
	}
	uint64_t start = b->last, end = start + b->o->bench_seconds * 1000 * b->tsc_per_ms;
	while (!past(end) && !b->res.why[0]) {
		rx_poll(b);
		tx_reap(b);
		if (past(b->last + STALL_MS * b->tsc_per_ms)) {
			fail(b, "receive: no data for 2000 ms");
			break;
		}
	}
	b->counting = false;
	b->res.cycles = b->last - start;
}

static uint64_t net_user(void *arg)
{
	struct net_bench *b = arg;
	for (uint16_t i = 0; i < b->rx->size; i++)
		rx_give(b->rx, i);
	virtq_kick(b->rx);
	if (!handshake(b))
		return 1;
	if (b->o->bench_kind == BENCH_NET_TX)
		run_tx(b);
	else
		run_rx(b);
	/* "end", a few times: the peer may be dropping what it cannot take. */
	char end[64];
	ksnprintf(end, sizeof(end), "chv-bench end %lu %lu", b->res.ops, b->res.bytes);
	for (unsigned k = 0; k < END_SENDS && !b->res.why[0]; k++) {
		send_msg(b, end);
		uint64_t t = rdtsc() + END_EVERY_MS * b->tsc_per_ms;
		while (!past(t) && !b->res.why[0]) {
			rx_poll(b);
			tx_reap(b);
		}
	}
	return 0;
}

void bench_net(const struct options *o, struct bench_result *res)
{
	static struct virtio_dev v;
	static struct virtq rxq, txq;
	static struct net_bench b;
	char *why = res->why;
	size_t cap = sizeof(res->why);

	if (!o->have_net) {
		ksnprintf(why, cap, "%s needs chv.net=GUEST_IP,PEER_IP,PORT",
			  bench_kind_name(o->bench_kind));
		return;
	}
	if (!virtio_open(VIRTIO_ID_NET, &v, why, cap) ||
	    !virtio_negotiate(&v, 1ull << NET_F_MAC | 1ull << NET_F_MTU, why, cap) ||
	    !virtio_queue_setup(&v, RXQ, &rxq, (uint64_t)(uintptr_t)rx_ring, why, cap) ||
	    !virtio_queue_setup(&v, TXQ, &txq, (uint64_t)(uintptr_t)tx_ring, why, cap))
		return;
	if (txq.size < 2) {
		ksnprintf(why, cap, "transmit queue of %u entries", txq.size);
		return;
	}
	memset(&b, 0, sizeof(b));
	b.o = o;
	b.rx = &rxq;
	b.tx = &txq;
	b.tsc_per_ms = tsc_khz(NULL);
	if (v.features >> NET_F_MAC & 1) {
		for (unsigned i = 0; i < ETH_ALEN; i++)
			b.mac[i] = rd8(v.device + i);
	} else {
		static const uint8_t own[ETH_ALEN] = {0x02, 0x00, 0x00, 0xc4, 0x76, 0x02};
		memcpy(b.mac, own, ETH_ALEN);
	}
	b.mtu = 1500;
	if (v.features >> NET_F_MTU & 1 && rd16(v.device + NET_CFG_MTU) < b.mtu)
		b.mtu = rd16(v.device + NET_CFG_MTU);
	if (b.mtu < IP_HLEN + UDP_HLEN + sizeof(MSG_DATA)) {
		ksnprintf(why, cap, "mtu %u is too small for the data datagrams", b.mtu);
		return;
	}
	b.payload = b.mtu - IP_HLEN - UDP_HLEN;
	/* The control slot is the last one; data uses the rest. */
	b.ctl = txq.size - 1u;
	b.data_slots = b.ctl;
	virtio_driver_ok(&v);
	tap_diag("bench: virtio-net %02x:%02x.%x %04x:%04x, features 0x%lx, queues %u/%u, mtu "
		 "%u, %u-byte datagrams, %u s",
		 v.pci.bus, v.pci.dev, v.pci.fn, v.pci.vendor, v.pci.device, v.features, rxq.size,
		 txq.size, b.mtu, b.payload, o->bench_seconds);
	user_call(net_user, &b);
	uint8_t st = virtio_status(&v);
	virtio_reset(&v);
	if (b.rx_bad && !b.res.why[0])
		ksnprintf(b.res.why, sizeof(b.res.why), "%lu malformed frames received", b.rx_bad);
	tap_diag("bench: rx %lu malformed, %lu other frames", b.rx_bad, b.rx_other);
	*res = b.res;
	res->depth = o->bench_kind == BENCH_NET_TX ? b.data_slots : rxq.size;
	if (!res->why[0] && st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED))
		ksnprintf(res->why, sizeof(res->why), "device status 0x%x after the run", st);
}

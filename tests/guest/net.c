/* The net check (chv.net=GUEST_IP,PEER_IP,PORT): the first virtio-net function,
 * receive queue 0 kept full of buffers, transmit queue 1 one frame at a time,
 * both polled. On top of it a minimal IPv4 host: ARP (answers requests for
 * GUEST_IP, resolves PEER_IP), ICMP echo (answers requests to GUEST_IP) and
 * UDP on PORT. It sends "chv-net hello <mac>" to PEER_IP:PORT (again every
 * second until answered), then serves until the host's peer sends "done" or
 * the deadline passes; an "ack" completes the round trip.
 *
 * No offloads are negotiated, so every frame carries complete checksums both
 * ways: IPv4 header and ICMP checksums are verified on receive (bad frames
 * are counted and dropped), UDP checksums when nonzero; the guest computes
 * all of them on send. The whole exchange runs at CPL3. */
#include "guest.h"
#include "wire.h"

#define VIRTIO_ID_NET	   1
#define NET_F_MTU	   3
#define NET_F_MAC	   5
#define NET_F_STATUS	   16
#define NET_S_LINK_UP	   1
#define NET_CFG_STATUS	   6
#define NET_CFG_MTU	   10
#define NET_HDR_LEN	   12	/* virtio_net_hdr_v1: with VERSION_1, num_buffers is always there */
#define NET_BUF		   2048 /* header + the largest 1514-byte frame */
#define NET_RUN_MS	   60000
#define NET_TX_MS	   2000
#define NET_ARP_EVERY_MS   500
#define NET_HELLO_EVERY_MS 1000
#define RXQ		   0
#define TXQ		   1

#define ETH_ALEN     6
#define ETH_HLEN     14
#define ETH_ZLEN     60 /* shortest frame, without the FCS */
#define ETH_P_IP     0x0800
#define ETH_P_ARP    0x0806
#define ARP_LEN	     28
#define ARP_REQUEST  1
#define ARP_REPLY    2
#define IP_HLEN	     20
#define IP_DF	     0x4000
#define IP_TTL	     64
#define PROTO_ICMP   1
#define PROTO_UDP    17
#define ICMP_ECHO    8
#define ICMP_REPLY   0
#define UDP_HLEN     8
#define HELLO_PREFIX "chv-net hello "

static uint8_t rx_ring[4096] __attribute__((aligned(4096)));
static uint8_t tx_ring[4096] __attribute__((aligned(4096)));
static uint8_t rx_buf[VIRTQ_MAX][NET_BUF] __attribute__((aligned(4096)));
static uint8_t tx_buf[NET_BUF] __attribute__((aligned(64)));

struct net_run {
	const struct options *o;
	struct virtq *rx, *tx;
	uint64_t tsc_per_ms;
	uint8_t mac[ETH_ALEN], peer_mac[ETH_ALEN];
	bool have_peer_mac, acked, done;
	uint16_t ip_id;
	/* counters, for the diagnostics */
	unsigned rx_frames, rx_ignored, rx_bad, tx_frames;
	unsigned arp_sent, arp_answered, hellos, echoes;
	uint64_t ack_ms, done_ms; /* since the start of the run, 0 until then */
	/* the first failure that ended the run, as text */
	bool failed;
	char why[160];
	char ack_text[48];
};

/* The UDP checksum over the IPv4 pseudo-header and the datagram u. */
static uint16_t udp_sum(uint32_t src, uint32_t dst, const uint8_t *u, uint16_t len)
{
	uint8_t pseudo[12];
	put32(pseudo, src);
	put32(pseudo + 4, dst);
	pseudo[8] = 0;
	pseudo[9] = PROTO_UDP;
	put16(pseudo + 10, len);
	return sum_fold(sum_add(sum_add(0, pseudo, sizeof(pseudo)), u, len));
}

static bool after(uint64_t now, uint64_t t)
{
	return (int64_t)(now - t) >= 0;
}

/* Records the first failure; the run stops at it. */
static void run_fail(struct net_run *r, const char *why)
{
	if (!r->failed)
		ksnprintf(r->why, sizeof(r->why), "%s", why);
	r->failed = true;
}

/* The frame being built for transmission starts after the virtio header. */
static uint8_t *tx_frame(void)
{
	return tx_buf + NET_HDR_LEN;
}

/* Sends the len-byte frame at tx_frame() and waits until the device has
 * taken it. */
static bool net_send(struct net_run *r, size_t len)
{
	if (len < ETH_ZLEN) {
		memset(tx_frame() + len, 0, ETH_ZLEN - len);
		len = ETH_ZLEN;
	}
	memset(tx_buf, 0, NET_HDR_LEN); /* no checksum offload, no GSO */
	struct virtq *vq = r->tx;
	vq->desc[0].addr = (uint64_t)(uintptr_t)tx_buf;
	vq->desc[0].len = (uint32_t)(NET_HDR_LEN + len);
	vq->desc[0].flags = 0;
	vq->desc[0].next = 0;
	virtq_publish(vq, 0);
	virtq_kick(vq);
	uint64_t end = rdtsc() + NET_TX_MS * r->tsc_per_ms;
	uint32_t id, got;
	while (!virtq_used_pop(vq, &id, &got)) {
		if (after(rdtsc(), end)) {
			run_fail(r, "transmit: the device did not return a frame within 2000 ms");
			return false;
		}
		__asm__ volatile("pause");
	}
	if (id != 0) {
		run_fail(r, "transmit: the used ring returned a descriptor never made available");
		return false;
	}
	r->tx_frames++;
	return true;
}

static void eth_header(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
	memcpy(f, dst, ETH_ALEN);
	memcpy(f + ETH_ALEN, src, ETH_ALEN);
	put16(f + 12, type);
}

static bool send_arp(struct net_run *r, uint16_t op, const uint8_t *eth_dst, const uint8_t *tha,
		     uint32_t tpa)
{
	uint8_t *f = tx_frame(), *a = f + ETH_HLEN;
	eth_header(f, eth_dst, r->mac, ETH_P_ARP);
	put16(a, 1); /* Ethernet */
	put16(a + 2, ETH_P_IP);
	a[4] = ETH_ALEN;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, r->mac, ETH_ALEN);
	put32(a + 14, r->o->net_ip);
	memcpy(a + 18, tha, ETH_ALEN);
	put32(a + 24, tpa);
	return net_send(r, ETH_HLEN + ARP_LEN);
}

/* An IPv4 header (no options, DF) for len bytes of payload, checksummed. */
static void ip_header(struct net_run *r, uint8_t *ip, uint8_t proto, uint32_t dst, uint16_t len)
{
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(IP_HLEN + len));
	put16(ip + 4, r->ip_id++);
	put16(ip + 6, IP_DF);
	ip[8] = IP_TTL;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, r->o->net_ip);
	put32(ip + 16, dst);
	put16(ip + 10, sum_fold(sum_add(0, ip, IP_HLEN)));
}

static size_t fmt_mac(char *buf, size_t cap, const uint8_t *m)
{
	return (size_t)ksnprintf(buf, cap, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3],
				 m[4], m[5]);
}

static bool send_hello(struct net_run *r)
{
	const struct options *o = r->o;
	uint8_t *f = tx_frame(), *ip = f + ETH_HLEN, *u = ip + IP_HLEN, *p = u + UDP_HLEN;
	size_t n = strlen(HELLO_PREFIX);
	memcpy(p, HELLO_PREFIX, n);
	n += fmt_mac((char *)p + n, 32, r->mac);
	uint16_t ulen = (uint16_t)(UDP_HLEN + n);
	eth_header(f, r->peer_mac, r->mac, ETH_P_IP);
	put16(u, o->net_port);
	put16(u + 2, o->net_port);
	put16(u + 4, ulen);
	put16(u + 6, 0);
	uint16_t sum = udp_sum(o->net_ip, o->net_peer, u, ulen);
	put16(u + 6, sum ? sum : 0xffff); /* 0 would mean "no checksum" */
	ip_header(r, ip, PROTO_UDP, o->net_peer, ulen);
	r->hellos++;
	return net_send(r, ETH_HLEN + IP_HLEN + ulen);
}

static void on_arp(struct net_run *r, const uint8_t *f, size_t n)
{
	const uint8_t *a = f + ETH_HLEN;
	if (n < ETH_HLEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETH_P_IP ||
	    a[4] != ETH_ALEN || a[5] != 4) {
		r->rx_ignored++;
		return;
	}
	uint16_t op = get16(a + 6);
	uint32_t spa = get32(a + 14), tpa = get32(a + 24);
	if (spa == r->o->net_peer && (op == ARP_REQUEST || op == ARP_REPLY)) {
		if (!r->have_peer_mac) {
			char m[24];
			fmt_mac(m, sizeof(m), a + 8);
			kprintf("# net: peer %u.%u.%u.%u is at %s\n", spa >> 24, spa >> 16 & 0xff,
				spa >> 8 & 0xff, spa & 0xff, m);
		}
		memcpy(r->peer_mac, a + 8, ETH_ALEN);
		r->have_peer_mac = true;
	}
	if (op == ARP_REQUEST && tpa == r->o->net_ip) {
		uint8_t sha[ETH_ALEN];
		memcpy(sha, a + 8, ETH_ALEN);
		if (send_arp(r, ARP_REPLY, sha, sha, spa))
			r->arp_answered++;
		return;
	}
	if (op != ARP_REPLY)
		r->rx_ignored++;
}

static void on_icmp(struct net_run *r, const uint8_t *f, const uint8_t *ip, const uint8_t *m,
		    uint16_t len)
{
	if (len < 8 || sum_fold(sum_add(0, m, len))) {
		r->rx_bad++;
		return;
	}
	if (m[0] != ICMP_ECHO || m[1] != 0) {
		r->rx_ignored++;
		return;
	}
	uint8_t *o = tx_frame(), *oip = o + ETH_HLEN, *om = oip + IP_HLEN;
	eth_header(o, f + ETH_ALEN, r->mac, ETH_P_IP);
	memcpy(om, m, len); /* identifier, sequence number and data come back as sent */
	om[0] = ICMP_REPLY;
	put16(om + 2, 0);
	put16(om + 2, sum_fold(sum_add(0, om, len)));
	ip_header(r, oip, PROTO_ICMP, get32(ip + 12), len);
	if (net_send(r, ETH_HLEN + IP_HLEN + len))
		r->echoes++;
}

static bool starts_with(const uint8_t *p, size_t n, const char *lit)
{
	size_t l = strlen(lit);
	return n >= l && !memcmp(p, lit, l);
}

static void on_udp(struct net_run *r, const uint8_t *ip, const uint8_t *u, uint16_t len)
{
	const struct options *o = r->o;
	uint32_t src = get32(ip + 12);
	if (len < UDP_HLEN || get16(u + 4) != len) {
		r->rx_bad++;
		return;
	}
	if (get16(u + 6) && udp_sum(src, get32(ip + 16), u, len)) {
		r->rx_bad++;
		return;
	}
	if (get16(u + 2) != o->net_port || src != o->net_peer) {
		r->rx_ignored++;
		return;
	}
	const uint8_t *p = u + UDP_HLEN;
	size_t n = len - UDP_HLEN;
	if (starts_with(p, n, "ack")) {
		if (!r->acked) {
			size_t c = n < sizeof(r->ack_text) - 1 ? n : sizeof(r->ack_text) - 1;
			for (size_t i = 0; i < c; i++)
				r->ack_text[i] = p[i] >= 0x20 && p[i] < 0x7f ? (char)p[i] : '.';
			r->ack_text[c] = 0;
			kprintf("# net: \"%s\" from the host\n", r->ack_text);
		}
		r->acked = true;
	} else if (starts_with(p, n, "done")) {
		kprintf("# net: \"done\" from the host\n");
		r->done = true;
	} else {
		r->rx_ignored++;
	}
}

static void on_ipv4(struct net_run *r, const uint8_t *f, size_t n)
{
	const uint8_t *ip = f + ETH_HLEN;
	if (n < ETH_HLEN + IP_HLEN) {
		r->rx_bad++;
		return;
	}
	unsigned ihl = (ip[0] & 0xf) * 4u;
	uint16_t total = get16(ip + 2);
	if (ip[0] >> 4 != 4 || ihl < IP_HLEN || total < ihl || total > n - ETH_HLEN ||
	    sum_fold(sum_add(0, ip, ihl))) {
		r->rx_bad++;
		return;
	}
	/* Not for us, or a fragment: neither happens in the test's network. */
	if (get32(ip + 16) != r->o->net_ip || (get16(ip + 6) & 0x3fff)) {
		r->rx_ignored++;
		return;
	}
	if (ip[9] == PROTO_ICMP)
		on_icmp(r, f, ip, ip + ihl, (uint16_t)(total - ihl));
	else if (ip[9] == PROTO_UDP)
		on_udp(r, ip, ip + ihl, (uint16_t)(total - ihl));
	else
		r->rx_ignored++;
}

static void on_frame(struct net_run *r, const uint8_t *f, size_t n)
{
	r->rx_frames++;
	if (n < ETH_HLEN) {
		r->rx_bad++;
		return;
	}
	uint16_t type = get16(f + 12);
	if (type == ETH_P_ARP)
		on_arp(r, f, n);
	else if (type == ETH_P_IP)
		on_ipv4(r, f, n);
	else
		r->rx_ignored++; /* IPv6 neighbour discovery and the like */
}

static void rx_give(struct virtq *vq, uint16_t i)
{
	vq->desc[i].addr = (uint64_t)(uintptr_t)rx_buf[i];
	vq->desc[i].len = NET_BUF;
	vq->desc[i].flags = VIRTQ_DESC_F_WRITE;
	vq->desc[i].next = 0;
	virtq_publish(vq, i);
}

static uint64_t net_user(void *arg)
{
	struct net_run *r = arg;
	const struct options *o = r->o;
	static const uint8_t bcast[ETH_ALEN] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t zero[ETH_ALEN] = {0};
	uint64_t start = rdtsc(), end = start + NET_RUN_MS * r->tsc_per_ms;
	uint64_t next_arp = start, next_hello = start;

	for (uint16_t i = 0; i < r->rx->size; i++)
		rx_give(r->rx, i);
	virtq_kick(r->rx);
	while (!r->done && !r->failed) {
		uint64_t now = rdtsc();
		if (after(now, end))
			break;
		if (!r->have_peer_mac && after(now, next_arp)) {
			if (send_arp(r, ARP_REQUEST, bcast, zero, o->net_peer))
				r->arp_sent++;
			next_arp = now + NET_ARP_EVERY_MS * r->tsc_per_ms;
		} else if (r->have_peer_mac && !r->acked && after(now, next_hello)) {
			send_hello(r);
			next_hello = now + NET_HELLO_EVERY_MS * r->tsc_per_ms;
		}
		uint32_t id, len;
		bool got = false;
		while (!r->failed && virtq_used_pop(r->rx, &id, &len)) {
			if (id >= r->rx->size || len < NET_HDR_LEN || len > NET_BUF) {
				run_fail(r, "receive: a used entry with a bad id or length");
				break;
			}
			on_frame(r, rx_buf[id] + NET_HDR_LEN, len - NET_HDR_LEN);
			if (r->acked && !r->ack_ms)
				r->ack_ms = (rdtsc() - start) / r->tsc_per_ms + 1;
			rx_give(r->rx, (uint16_t)id);
			got = true;
		}
		if (got)
			virtq_kick(r->rx);
		if (r->done)
			r->done_ms = (rdtsc() - start) / r->tsc_per_ms + 1;
		__asm__ volatile("pause");
	}
	return 0;
}

static void ip_str(char *buf, size_t cap, uint32_t ip)
{
	ksnprintf(buf, cap, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 0xff, ip >> 8 & 0xff, ip & 0xff);
}

void check_net(const struct options *o)
{
	static struct virtio_dev v;
	static struct virtq rxq, txq;
	char why[160], name[64], mac[24], peer[20];

	if (!o->have_net) {
		for (unsigned i = 0; i < NET_CHECK_LINES; i++)
			tap_fail("net", "no chv.net=GUEST_IP,PEER_IP,PORT given");
		return;
	}
	if (!virtio_open(VIRTIO_ID_NET, &v, why, sizeof(why)) ||
	    !virtio_negotiate(&v, 1ull << NET_F_MAC | 1ull << NET_F_MTU | 1ull << NET_F_STATUS, why,
			      sizeof(why)) ||
	    !virtio_queue_setup(&v, RXQ, &rxq, (uint64_t)(uintptr_t)rx_ring, why, sizeof(why)) ||
	    !virtio_queue_setup(&v, TXQ, &txq, (uint64_t)(uintptr_t)tx_ring, why, sizeof(why))) {
		tap_fail("net: device found", "%s", why);
		for (unsigned i = 1; i < NET_CHECK_LINES; i++)
			tap_fail("net", "no usable virtio-net device");
		return;
	}
	struct net_run r = {.o = o, .rx = &rxq, .tx = &txq, .tsc_per_ms = tsc_khz(NULL)};
	bool have_mac = v.features >> NET_F_MAC & 1;
	if (have_mac) {
		for (unsigned i = 0; i < ETH_ALEN; i++)
			r.mac[i] = rd8(v.device + i);
	} else {
		/* 5.1.4.1: without one from the device, the driver picks its own. */
		static const uint8_t own[ETH_ALEN] = {0x02, 0x00, 0x00, 0xc4, 0x76, 0x01};
		memcpy(r.mac, own, ETH_ALEN);
	}
	fmt_mac(mac, sizeof(mac), r.mac);
	char link[32] = "", mtu[24] = "";
	if (v.features >> NET_F_STATUS & 1)
		ksnprintf(link, sizeof(link), ", link %s",
			  rd16(v.device + NET_CFG_STATUS) & NET_S_LINK_UP ? "up" : "down");
	if (v.features >> NET_F_MTU & 1)
		ksnprintf(mtu, sizeof(mtu), ", mtu %u", rd16(v.device + NET_CFG_MTU));
	virtio_driver_ok(&v);
	tap_diag("net: %02x:%02x.%x %04x:%04x, BAR%u at 0x%lx, features 0x%lx, queue sizes %u/%u, "
		 "mac %s%s%s%s",
		 v.pci.bus, v.pci.dev, v.pci.fn, v.pci.vendor, v.pci.device, v.bar, v.bar_pa,
		 v.features, rxq.size, txq.size, mac, have_mac ? "" : " (the driver's own)", mtu,
		 link);
	ip_str(why, 20, o->net_ip);
	ip_str(peer, sizeof(peer), o->net_peer);
	tap_diag("net: %s to %s, udp port %u, at most %u s", why, peer, o->net_port,
		 NET_RUN_MS / 1000);
	ksnprintf(name, sizeof(name), "net: device found, mac %s", mac);
	tap_ok(name);

	user_call(net_user, &r);
	uint8_t st = virtio_status(&v);
	virtio_reset(&v);
	tap_diag(
	    "net: rx %u frames (%u ignored, %u bad), tx %u; arp: %u requests sent, %u "
	    "answered; %u hello(s) sent; ack after %lu ms, done after %lu ms; device status 0x%x",
	    r.rx_frames, r.rx_ignored, r.rx_bad, r.tx_frames, r.arp_sent, r.arp_answered, r.hellos,
	    r.ack_ms, r.done_ms, st);
	bool dev_bad = st & (VIRTIO_STATUS_NEEDS_RESET | VIRTIO_STATUS_FAILED);
	if (r.acked)
		tap_ok("net: udp round trip with host");
	else if (r.failed)
		tap_fail("net: udp round trip with host", "%s", r.why);
	else if (!r.have_peer_mac)
		tap_fail("net: udp round trip with host", "no ARP reply from %s to %u request(s)",
			 peer, r.arp_sent);
	else
		tap_fail("net: udp round trip with host", "no ack from %s:%u to %u hello(s)", peer,
			 o->net_port, r.hellos);
	ksnprintf(name, sizeof(name), "net: answered %u echo requests", r.echoes);
	if (r.echoes)
		tap_ok(name);
	else
		tap_fail(name, "the host's pings got no reply%s",
			 r.failed ? " (the run failed)" : "");
	if (r.done && !dev_bad)
		tap_ok("net: host peer finished");
	else if (dev_bad)
		tap_fail("net: host peer finished", "device status 0x%x", st);
	else
		tap_fail("net: host peer finished", "no \"done\" from %s within %u s%s%s", peer,
			 NET_RUN_MS / 1000, r.failed ? ": " : "", r.failed ? r.why : "");
}

/* Tap devices through /dev/net/tun and the host side's addresses through
 * the classic interface ioctls (no netlink needed for one address). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "virtio/tap.h"

#define TUN_DEV "/dev/net/tun"

static const char *perm_hint(int e)
{
	return e == EPERM || e == EACCES ? " (needs CAP_NET_ADMIN)" : "";
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -errno;
	return 0;
}

static int open_queue(struct tap *t, const char *want, bool multi, struct chv_err *err)
{
	int fd = open(TUN_DEV, O_RDWR | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		int e = errno;
		return chv_err_set(err, -e, "--net: cannot open %s: %s%s", TUN_DEV, strerror(e),
				   perm_hint(e));
	}
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR | (multi ? IFF_MULTI_QUEUE : 0);
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", want);
	if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
		int e = errno;
		close(fd);
		return chv_err_set(err, -e, "--net: tap=%s: cannot create or attach: %s%s",
				   want[0] ? want : "(new)", strerror(e), perm_hint(e));
	}
	t->fds[t->nfds++] = fd;
	snprintf(t->name, sizeof(t->name), "%s", ifr.ifr_name);
	return 0;
}

/* A passed-in fd must be a tap set up the way the device reads it. */
static int adopt_fd(struct tap *t, int fd, struct chv_err *err)
{
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (fd < 0 || ioctl(fd, TUNGETIFF, &ifr) < 0)
		return chv_err_set(err, fd < 0 ? -EBADF : -errno,
				   "--net: fd=%d is not a tap device", fd);
	if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP)
		return chv_err_set(err, -EINVAL, "--net: fd=%d is a tun (layer 3), not a tap", fd);
	if (!(ifr.ifr_flags & IFF_VNET_HDR))
		return chv_err_set(err, -EINVAL,
				   "--net: fd=%d: tap %s was opened without IFF_VNET_HDR", fd,
				   ifr.ifr_name);
	if (!(ifr.ifr_flags & IFF_NO_PI))
		return chv_err_set(err, -EINVAL,
				   "--net: fd=%d: tap %s was opened without IFF_NO_PI", fd,
				   ifr.ifr_name);
	if (t->nfds && strcmp(t->name, ifr.ifr_name))
		return chv_err_set(err, -EINVAL, "--net: fd=%d is tap %s, the others are tap %s",
				   fd, ifr.ifr_name, t->name);
	int rc = set_nonblock(fd);
	if (rc)
		return chv_err_set(err, rc, "--net: fd=%d: %s", fd, strerror(-rc));
	t->fds[t->nfds++] = fd;
	snprintf(t->name, sizeof(t->name), "%s", ifr.ifr_name);
	return 0;
}

static int parse_ipv4(const char *what, const char *s, struct in_addr *a, struct chv_err *err)
{
	if (inet_pton(AF_INET, s, a) != 1)
		return chv_err_set(err, -EINVAL, "--net: %s=%s is not an IPv4 address", what, s);
	return 0;
}

static int if_ioctl(int sock, unsigned long req, struct ifreq *ifr, const char *name,
		    const char *what, const char *val, struct chv_err *err)
{
	if (ioctl(sock, req, ifr) == 0)
		return 0;
	int e = errno;
	return chv_err_set(err, -e, "--net: tap=%s: cannot set %s=%s: %s%s", name, what, val,
			   strerror(e), perm_hint(e));
}

static void put_addr(struct ifreq *ifr, struct in_addr a)
{
	struct sockaddr_in sin;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr = a;
	memcpy(&ifr->ifr_addr, &sin, sizeof(sin));
}

static int host_side(struct tap *t, const struct tap_opts *o, struct chv_err *err)
{
	struct in_addr ip = {0}, mask = {0};
	int rc;
	if (o->mask && !o->ip)
		return chv_err_set(err, -EINVAL, "--net: mask=%s given without ip=", o->mask);
	if (o->ip && (rc = parse_ipv4("ip", o->ip, &ip, err)))
		return rc;
	if (o->mask) {
		if ((rc = parse_ipv4("mask", o->mask, &mask, err)))
			return rc;
		uint32_t m = ntohl(mask.s_addr);
		if (m & (~m >> 1))
			return chv_err_set(err, -EINVAL,
					   "--net: mask=%s is not a contiguous netmask", o->mask);
	}
	if (o->mtu && o->mtu < 68)
		return chv_err_set(err, -EINVAL, "--net: mtu=%u is below 68", o->mtu);
	if (!o->ip && !o->mtu)
		return 0;

	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return chv_err_set(err, -errno, "--net: socket: %s", strerror(errno));
	struct ifreq ifr;
	char val[32];
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", t->name);
	rc = 0;
	if (o->mtu) {
		ifr.ifr_mtu = o->mtu;
		snprintf(val, sizeof(val), "%u", o->mtu);
		rc = if_ioctl(s, SIOCSIFMTU, &ifr, t->name, "mtu", val, err);
	}
	if (!rc && o->ip) {
		put_addr(&ifr, ip);
		rc = if_ioctl(s, SIOCSIFADDR, &ifr, t->name, "ip", o->ip, err);
	}
	if (!rc && o->mask) {
		put_addr(&ifr, mask);
		rc = if_ioctl(s, SIOCSIFNETMASK, &ifr, t->name, "mask", o->mask, err);
	}
	if (!rc)
		rc = if_ioctl(s, SIOCGIFFLAGS, &ifr, t->name, "flags", "", err);
	if (!rc) {
		ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
		rc = if_ioctl(s, SIOCSIFFLAGS, &ifr, t->name, "flags", "up", err);
	}
	close(s);
	return rc;
}

int tap_open(struct tap *t, const struct tap_opts *o, struct chv_err *err)
{
	memset(t, 0, sizeof(*t));
	uint16_t pairs = o->queue_pairs ? o->queue_pairs : 1;
	if (pairs > VIRTIO_NET_MAX_PAIRS)
		return chv_err_set(err, -EINVAL, "--net: queue_pairs=%u is not in 1..%u", pairs,
				   VIRTIO_NET_MAX_PAIRS);
	if (o->name && strlen(o->name) >= IFNAMSIZ)
		return chv_err_set(err, -EINVAL, "--net: tap=%s is longer than %d characters",
				   o->name, IFNAMSIZ - 1);
	if (o->name && (strchr(o->name, '/') || strchr(o->name, ' ')))
		return chv_err_set(err, -EINVAL, "--net: tap=%s is not an interface name", o->name);
	int rc;
	if (o->fds && o->nfds) {
		if (o->name && o->name[0])
			return chv_err_set(err, -EINVAL, "--net: tap=%s and fd= are exclusive",
					   o->name);
		if (o->nfds != pairs && o->queue_pairs)
			return chv_err_set(err, -EINVAL, "--net: %u fds given for %u queue pairs",
					   o->nfds, pairs);
		if (o->nfds > VIRTIO_NET_MAX_PAIRS)
			return chv_err_set(err, -EINVAL, "--net: %u fds, at most %u", o->nfds,
					   VIRTIO_NET_MAX_PAIRS);
		for (uint16_t k = 0; k < o->nfds; k++)
			if ((rc = adopt_fd(t, o->fds[k], err)))
				return rc;
	} else {
		t->owns_fds = true;
		const char *want = o->name ? o->name : "";
		for (uint16_t k = 0; k < pairs; k++) {
			/* Later queues attach to the name the first one got. */
			char name[IFNAMSIZ];
			snprintf(name, sizeof(name), "%s", k ? t->name : want);
			if ((rc = open_queue(t, name, pairs > 1, err)))
				return rc;
		}
	}
	if ((rc = tap_configure(t, VIRTIO_NET_HDR_LEN, 0))) {
		const char *v = rc == -EINVAL ? "" : strerror(-rc);
		return chv_err_set(err, rc, "--net: tap=%s: cannot set the vnet header size: %s",
				   t->name, v);
	}
	return host_side(t, o, err);
}

void tap_close(struct tap *t)
{
	if (t->owns_fds)
		for (uint16_t k = 0; k < t->nfds; k++)
			close(t->fds[k]);
	t->nfds = 0;
	t->owns_fds = false;
}

int tap_configure(struct tap *t, unsigned hdr_len, unsigned offloads)
{
	int sz = (int)hdr_len;
	for (uint16_t k = 0; k < t->nfds; k++) {
		if (ioctl(t->fds[k], TUNSETVNETHDRSZ, &sz) < 0)
			return -errno;
		if (ioctl(t->fds[k], TUNSETOFFLOAD, (unsigned long)offloads) < 0)
			return -errno;
	}
	return 0;
}

static int tap_configure_cb(void *ctx, unsigned hdr_len, unsigned offloads)
{
	return tap_configure(ctx, hdr_len, offloads);
}

void tap_backend(struct tap *t, struct virtio_net_backend *be)
{
	memset(be, 0, sizeof(*be));
	for (uint16_t k = 0; k < t->nfds; k++)
		be->fds[k] = t->fds[k];
	be->nfds = t->nfds;
	be->configure = tap_configure_cb;
	be->ctx = t;
	be->host_offloads = true;
	be->guest_offloads = true;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int tap_parse_mac(const char *s, uint8_t mac[6])
{
	if (!s || strlen(s) != 17)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(s[3 * i]), lo = hexval(s[3 * i + 1]);
		if (hi < 0 || lo < 0 || (i < 5 && s[3 * i + 2] != ':'))
			return -EINVAL;
		mac[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

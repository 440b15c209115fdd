/* A Linux tap device as the virtio-net backend: one fd per queue pair from
 * /dev/net/tun (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, IFF_MULTI_QUEUE for more
 * than one), attached to an existing tap by name, created (the kernel picks
 * a name when none is given), or handed in as fds the caller opened (fd=).
 * The host side can be given an IPv4 address, a netmask and an MTU and is
 * brought up. Creating or configuring a tap needs CAP_NET_ADMIN; errors say
 * so, naming --net and the option. */
#ifndef CHV_VIRTIO_TAP_H
#define CHV_VIRTIO_TAP_H

#include <net/if.h>
#include <stdbool.h>
#include <stdint.h>

#include "virtio/net.h"
#include "vm/err.h"

struct tap_opts {
	const char *name; /* tap=; NULL or "": a new tap, name chosen by the kernel */
	const int *fds;	  /* fd=: already-open tap fds (nfds of them), or NULL */
	uint16_t nfds;
	uint16_t queue_pairs; /* 0 means 1; with fds, must equal nfds */
	const char *ip;	      /* host side IPv4 address, or NULL */
	const char *mask;     /* its netmask (dotted quad), or NULL (needs ip) */
	uint16_t mtu;	      /* host side MTU, 0: leave it */
};

struct tap {
	int fds[VIRTIO_NET_MAX_PAIRS];
	uint16_t nfds;
	bool owns_fds; /* opened here (closed by tap_close) */
	char name[IFNAMSIZ];
};

/* Opens or adopts the tap and configures the host side. Each fd ends up
 * non-blocking and close-on-exec with a 12-byte vnet header. Safe to close
 * after a failure. */
chv_must_check int tap_open(struct tap *t, const struct tap_opts *o, struct chv_err *err);
/* Safe on a zeroed or half-built object. */
void tap_close(struct tap *t);

/* Header length and the guest's receive offloads (VIRTIO_NET_OFFLOAD_*) on
 * every queue: 0 or -errno. */
chv_must_check int tap_configure(struct tap *t, unsigned hdr_len, unsigned offloads);

/* The virtio-net backend over t (fds, configure hook, offloads offered). */
void tap_backend(struct tap *t, struct virtio_net_backend *be);

/* Parses a MAC address "aa:bb:cc:dd:ee:ff": 0 or -EINVAL. */
chv_must_check int tap_parse_mac(const char *s, uint8_t mac[6]);

#endif

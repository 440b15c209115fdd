/* The VM's virtio-pci functions and their event loop.
 *
 * Each function is a virtio device behind the virtio-pci transport, put on
 * the root bus at a fixed slot by vm_pci_add_device() (which also builds its
 * MSI-X with one GSI and irqfd per vector). Slots: rng 1, disk i at 2 + i,
 * the console after the disks, net j after the console (or the disks).
 *
 * The event loop is one device thread waiting with epoll on "watches": an fd
 * and the function to call while it is readable (level-triggered). The
 * guest's queue notifications never reach a vCPU exit: every queue's notify
 * address carries an ioeventfd (16-bit write, datamatch = queue index), moved
 * whenever the guest moves the BAR, watched to run the device's queue
 * handler. virtio-net asks for its backend fds to be watched while a receive
 * queue has buffers (virtio_net_poll), and each rate limiter's timerfd is
 * watched to call ratelimit_fire(). The vCPU exit path only emulates the
 * registers.
 *
 * Teardown: vm_virtio_stop() (after the vCPUs are gone) ends the thread, so
 * nothing kicks a device while vm_pci_destroy() takes the functions off the
 * bus (which unmaps the BARs and so drops the ioeventfds); vm_virtio_destroy()
 * then frees the devices. */
#include <errno.h>
#include <inttypes.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "pci/virtio_pci.h"
#include "virtio/blk.h"
#include "virtio/console.h"
#include "virtio/net.h"
#include "virtio/ratelimit.h"
#include "virtio/rng.h"
#include "virtio/tap.h"
#include "vm/log.h"
#include "vm/seccomp.h"
#include "vm/sink.h"
#include "vm/vm_internal.h"

_Static_assert(CONFIG_NET_MAX_PAIRS == VIRTIO_NET_MAX_PAIRS, "--net queue pairs");

struct vdev;

/* An fd the event loop watches, and what it calls while the fd is readable.
 * Lives until the loop has stopped. */
struct watch {
	int fd;
	void (*fn)(void *ctx);
	void *ctx;
};

struct vdev_queue {
	struct vdev *dev;
	uint16_t index;
	int fd;		   /* the ioeventfd's eventfd */
	uint64_t assigned; /* where it is registered, or PCI_BAR_UNMAPPED */
	struct watch w;
};

/* One virtio-pci function. */
struct vdev {
	struct vm *vm;
	const char *name; /* "rng", "blk0": counters are virtio.<name>.* */
	struct virtio_dev *vdev;
	struct virtio_pci vp;
	bool vp_ok;
	uint16_t nq;
	struct vdev_queue *q;
	uint64_t notifications; /* ioeventfd wake-ups, atomic */
	bool warned;		/* a failed ioeventfd was logged once */
};

struct netdev;

/* Pair k's backend fd, watched while the device asks (virtio_net_poll). */
struct net_rx {
	struct watch w;
	struct netdev *nd;
	uint16_t pair;
};

/* A rate limiter and the watch on its timerfd. */
struct limiter {
	struct ratelimit *rl;
	struct watch w;
};

/* One --net: the tap, the device over it and its PCI function. */
struct netdev {
	struct vm_virtio *v;
	struct tap tap;
	struct virtio_net net;
	bool net_ok;
	struct vdev dev;
	char name[8];
	struct net_rx rx[VIRTIO_NET_MAX_PAIRS];
	struct limiter own;   /* the device's own limits; a group's are shared */
	struct ratelimit *rl; /* the limiter in use: own.rl, a group's, or NULL */
};

struct vm_virtio {
	int epfd, stop_fd;
	pthread_t thread;
	bool thread_ok;
	struct virtio_rng rng;
	bool rng_ok;
	struct vdev rng_dev;
	/* One per --disk, at VM_PCI_SLOT_DISK0 + i; blk_ok[i]: needs destroy. */
	struct virtio_blk blk[CONFIG_MAX_DISKS];
	bool blk_ok[CONFIG_MAX_DISKS];
	struct vdev blk_dev[CONFIG_MAX_DISKS];
	char blk_name[CONFIG_MAX_DISKS][8];
	uint32_t ndisks;
	/* --console: the device after the disks, and its back-end. */
	struct virtio_console con;
	bool con_ok;
	struct vdev con_dev;
	struct sink *con_sink;
	/* --net j at net_slot(j), after the console. */
	struct netdev net[CONFIG_MAX_NETS];
	uint32_t nnets;
	/* --rate-limit-group i, and the disks' own limiters. */
	struct limiter group[CONFIG_MAX_RL_GROUPS];
	struct limiter blk_rl[CONFIG_MAX_DISKS];
};

static int watch_set(struct vm_virtio *v, struct watch *w, bool on)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = w};
	if (on)
		return epoll_ctl(v->epfd, EPOLL_CTL_ADD, w->fd, &ev) == 0 || errno == EEXIST
			   ? 0
			   : -errno;
	return epoll_ctl(v->epfd, EPOLL_CTL_DEL, w->fd, NULL) == 0 || errno == ENOENT ? 0 : -errno;
}

static void ioev_set(struct vdev *d, struct vdev_queue *q, uint64_t addr, bool assign)
{
	struct vm *vm = d->vm;
	int e = vm->ops->ioeventfd(vm->hvm, q->fd, addr, 2, false, q->index, assign);
	if (e == 0) {
		q->assigned = assign ? addr : PCI_BAR_UNMAPPED;
	} else if (!d->warned) {
		/* Kicks still arrive, through the vCPU's MMIO exit. */
		d->warned = true;
		log_warn("virtio-%s: queue %u: %s the ioeventfd at %#" PRIx64 ": %s", d->name,
			 q->index, assign ? "registering" : "removing", addr, strerror(-e));
	}
}

/* Runs with the PCI function's lock held (pci/ calls it on a BAR write from
 * a vCPU, at placement and at removal). */
static void dev_bar_moved(void *ctx, uint64_t old_addr, uint64_t new_addr)
{
	struct vdev *d = ctx;
	vm_pci_bar_moved(d->vm, &d->vp.pci, VIRTIO_PCI_BAR, old_addr, new_addr);
	for (uint16_t i = 0; i < d->nq; i++) {
		struct vdev_queue *q = &d->q[i];
		if (q->assigned != PCI_BAR_UNMAPPED)
			ioev_set(d, q, q->assigned, false);
		struct virtio_pci_notify n;
		if (new_addr == PCI_BAR_UNMAPPED || virtio_pci_notify_info(&d->vp, i, &n) < 0)
			continue;
		ioev_set(d, q, new_addr + n.offset, true);
	}
}

/* A queue's ioeventfd fired: the guest kicked it. */
static void queue_kicked(void *ctx)
{
	struct vdev_queue *q = ctx;
	uint64_t cnt;
	if (read(q->fd, &cnt, sizeof(cnt)) != sizeof(cnt))
		return; /* EAGAIN: drained by an earlier wake-up */
	__atomic_fetch_add(&q->dev->notifications, 1, __ATOMIC_RELAXED);
	virtio_pci_kick(&q->dev->vp, q->index);
}

static int dev_add(struct vm *vm, struct vm_virtio *v, struct vdev *d, const char *name,
		   struct virtio_dev *vdev, int slot, struct chv_err *err)
{
	d->vm = vm;
	d->name = name;
	d->vdev = vdev;
	d->q = calloc(vdev->num_queues, sizeof(*d->q));
	if (!d->q)
		return chv_err_set(err, -ENOMEM, "virtio-%s: out of memory", name);
	d->nq = vdev->num_queues;
	for (uint16_t i = 0; i < d->nq; i++) {
		struct vdev_queue *q = &d->q[i];
		*q = (struct vdev_queue){
		    .dev = d, .index = i, .fd = -1, .assigned = PCI_BAR_UNMAPPED};
		q->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (q->fd < 0)
			return chv_err_set(err, -errno, "virtio-%s: queue %u eventfd: %s", name, i,
					   strerror(errno));
		q->w = (struct watch){q->fd, queue_kicked, q};
		int e = watch_set(v, &q->w, true);
		if (e < 0)
			return chv_err_set(err, e, "virtio-%s: epoll: %s", name, strerror(-e));
	}
	const struct virtio_pci_host host = {
	    .bar_moved = dev_bar_moved,
	    .ctx = d,
	    .msix_external = true,
	};
	d->vp_ok = true; /* virtio_pci_destroy() is safe after a failed init */
	int e = virtio_pci_init(&d->vp, vdev, &host, err);
	if (e < 0)
		return e;
	struct pci_msix_cfg mcfg;
	virtio_pci_msix_cfg(&d->vp, &mcfg);
	char fname[32];
	snprintf(fname, sizeof(fname), "virtio-%s", name);
	struct vm_pci_fn fn = {
	    .dev = &d->vp.pci,
	    .slot = slot,
	    .name = fname,
	    .opaque = &d->vp,
	    .msix = &mcfg,
	};
	fn.bar_io[VIRTIO_PCI_BAR] = virtio_pci_bar_io;
	struct pci_msix *msix = NULL;
	e = vm_pci_add_device(vm, &fn, &msix, err);
	if (e < 0)
		return e;
	virtio_pci_set_msix(&d->vp, msix);
	return 0;
}

/* After vm_pci_destroy(), which has taken the function off the bus. */
static void dev_free(struct vdev *d)
{
	if (d->vp_ok)
		virtio_pci_destroy(&d->vp);
	d->vp_ok = false;
	for (uint16_t i = 0; i < d->nq; i++)
		if (d->q[i].fd >= 0)
			close(d->q[i].fd);
	free(d->q);
	d->q = NULL;
	d->nq = 0;
}

static void *event_loop(void *arg)
{
	struct vm_virtio *v = arg;
	chv_seccomp_thread_or_exit(SECCOMP_DEVICE_LOOP);
	struct epoll_event ev[16];
	for (;;) {
		int n = epoll_wait(v->epfd, ev, 16, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("virtio: epoll_wait: %s; queue kicks now stop", strerror(errno));
			return NULL;
		}
		for (int i = 0; i < n; i++) {
			if (!ev[i].data.ptr)
				return NULL; /* the stop eventfd */
			struct watch *w = ev[i].data.ptr;
			w->fn(w->ctx);
		}
	}
}

static void limiter_fired(void *ctx)
{
	ratelimit_fire(ctx);
}

/* A limiter for c (none when c limits nothing), its timerfd watched. */
static int limiter_make(struct vm_virtio *v, struct limiter *l, const struct rl_config *c,
			const char *what, struct chv_err *err)
{
	if (!rl_config_active(c))
		return 0;
	struct chv_err e = {0};
	int rc = ratelimit_create(&l->rl, c, &e);
	if (rc < 0)
		return chv_err_set(err, rc, "%s: rate limiter: %s", what, e.msg);
	l->w = (struct watch){ratelimit_fd(l->rl), limiter_fired, l->rl};
	rc = watch_set(v, &l->w, true);
	if (rc < 0)
		return chv_err_set(err, rc, "%s: rate limiter: epoll: %s", what, strerror(-rc));
	return 0;
}

/* After the devices that use it. */
static void limiter_free(struct limiter *l)
{
	ratelimit_destroy(l->rl);
	l->rl = NULL;
}

/* The limiter a device uses: its own, or its group's. */
static struct ratelimit *device_limiter(struct vm *vm, struct vm_virtio *v, struct limiter *own,
					const char *group)
{
	if (own->rl)
		return own->rl;
	const struct rl_group_config *g = vm_config_find_rl_group(vm->cfg, group);
	return g ? v->group[g - vm->cfg->rl_groups].rl : NULL;
}

/* Disk i: its image opened and locked (the library's errors name --disk),
 * then the function on the bus like the rng's. */
static int disk_add(struct vm *vm, struct vm_virtio *v, uint32_t i, struct chv_err *err)
{
	const struct disk_config *dc = &vm->cfg->disks[i];
	int e = limiter_make(v, &v->blk_rl[i], &dc->rl, "--disk", err);
	if (e < 0)
		return e;
	const struct virtio_blk_opts o = {
	    .path = dc->path,
	    .readonly = dc->readonly,
	    .direct = dc->direct,
	    .serial = dc->serial,
	    .num_queues = dc->num_queues,
	    .queue_size = dc->queue_size,
	    .rl = device_limiter(vm, v, &v->blk_rl[i], dc->rl_group),
	};
	snprintf(v->blk_name[i], sizeof(v->blk_name[i]), "blk%u", i);
	v->blk_ok[i] = true; /* destroy is safe on a half-initialised device */
	v->ndisks = i + 1;
	e = virtio_blk_init(&v->blk[i], &vm->mem, &o, err);
	if (e < 0)
		return e;
	return dev_add(vm, v, &v->blk_dev[i], v->blk_name[i], &v->blk[i].vdev,
		       VM_PCI_SLOT_DISK0 + (int)i, err);
}

/* The console's back-end belongs to this VM instance: a reboot reopens it
 * (a socket client reconnects, a file is appended to). */
static int console_add(struct vm *vm, struct vm_virtio *v, struct chv_err *err)
{
	v->con_sink = sink_open_opt(&vm->cfg->console, "--console", err);
	if (!v->con_sink)
		return err && err->code < 0 ? err->code : -EINVAL;
	const struct out_sink out = sink_out(v->con_sink);
	v->con_ok = true; /* destroy is safe on a half-initialised device */
	int e = virtio_console_init(&v->con, &vm->mem, &out, 80, 25, err);
	if (e < 0)
		return e;
	e = dev_add(vm, v, &v->con_dev, "console", &v->con.vdev,
		    VM_PCI_SLOT_DISK0 + (int)vm->cfg->ndisks, err);
	if (e < 0)
		return e;
	sink_set_input(v->con_sink, virtio_console_sink_input, &v->con);
	return 0;
}

static int net_slot(const struct vm *vm, uint32_t j)
{
	return VM_PCI_SLOT_DISK0 + (int)vm->cfg->ndisks +
	       (vm->cfg->console.mode != CONSOLE_OFF ? 1 : 0) + (int)j;
}

static void net_rx_ready(void *ctx)
{
	struct net_rx *r = ctx;
	virtio_net_rx_ready(&r->nd->net, r->pair);
}

/* Called by the device (kicks, the loop, resets) when pair k's receive
 * queue can or cannot take frames. */
static void net_poll_set(void *ctx, uint16_t pair, int fd, bool on)
{
	struct netdev *nd = ctx;
	struct net_rx *r = &nd->rx[pair];
	r->w.fd = fd;
	int e = watch_set(nd->v, &r->w, on);
	if (e < 0)
		log_error("virtio-%s: pair %u: cannot %s watching fd %d: %s", nd->name, pair,
			  on ? "start" : "stop", fd, strerror(-e));
}

/* What tap.c leaves to us: the tap's own MAC (host_mac=) and the link up
 * (as Cloud Hypervisor, even without an address). */
static int tap_finish(struct netdev *nd, const struct net_config *nc, struct chv_err *err)
{
	int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return chv_err_set(err, -errno, "--net: socket: %s", strerror(errno));
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", nd->tap.name);
	int rc = 0;
	if (nc->has_host_mac) {
		ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
		memcpy(ifr.ifr_hwaddr.sa_data, nc->host_mac, 6);
		if (ioctl(s, SIOCSIFHWADDR, &ifr) < 0) {
			char mac[18];
			vm_config_format_mac(nc->host_mac, mac);
			rc = chv_err_set(err, -errno, "--net: tap=%s: cannot set host_mac=%s: %s",
					 nd->tap.name, mac, strerror(errno));
		}
	}
	if (!rc && ioctl(s, SIOCGIFFLAGS, &ifr) == 0 && !(ifr.ifr_flags & IFF_UP)) {
		ifr.ifr_flags |= IFF_UP;
		if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0)
			rc = chv_err_set(err, -errno, "--net: tap=%s: cannot bring it up: %s",
					 nd->tap.name, strerror(errno));
	}
	close(s);
	return rc;
}

/* Net j: the tap opened (errors name --net), the device over it, then the
 * function on the bus like the others. */
static int net_add(struct vm *vm, struct vm_virtio *v, uint32_t j, struct chv_err *err)
{
	const struct net_config *nc = &vm->cfg->nets[j];
	struct netdev *nd = &v->net[j];
	v->nnets = j + 1;
	nd->v = v;
	snprintf(nd->name, sizeof(nd->name), "net%u", j);
	const uint16_t pairs = (uint16_t)(nc->num_queues / 2);
	const struct tap_opts to = {
	    .name = nc->tap,
	    .fds = nc->nfds ? nc->fds : NULL,
	    .nfds = nc->nfds,
	    .queue_pairs = pairs,
	    .ip = nc->ip,
	    .mask = nc->mask,
	    .mtu = nc->mtu,
	};
	int e = tap_open(&nd->tap, &to, err);
	if (e < 0 || (e = tap_finish(nd, nc, err)) < 0)
		return e;
	if ((e = limiter_make(v, &nd->own, &nc->rl, "--net", err)) < 0)
		return e;
	nd->rl = device_limiter(vm, v, &nd->own, nc->rl_group);

	struct virtio_net_params np = {
	    .mtu = nc->mtu,
	    .queue_pairs = pairs,
	    .queue_size = nc->queue_size,
	    .no_tso = !nc->offload_tso, /* the device offers no UFO: offload_ufo is moot */
	    .rl = nd->rl,
	};
	memcpy(np.mac, nc->mac, 6);
	struct virtio_net_backend be;
	tap_backend(&nd->tap, &be);
	/* offload_csum=off: no offloaded frames either way (TSO rides on it). */
	be.host_offloads = be.host_offloads && nc->offload_csum;
	be.guest_offloads = be.guest_offloads && nc->offload_csum;
	nd->net_ok = true; /* destroy is safe on a half-initialised device */
	if ((e = virtio_net_init(&nd->net, &vm->mem, &np, &be, err)) < 0)
		return e;
	for (uint16_t k = 0; k < pairs; k++)
		nd->rx[k] = (struct net_rx){{-1, net_rx_ready, &nd->rx[k]}, nd, k};
	const struct virtio_net_poll poll = {.set = net_poll_set, .ctx = nd};
	virtio_net_set_poll(&nd->net, &poll);
	return dev_add(vm, v, &nd->dev, nd->name, &nd->net.vdev, net_slot(vm, j), err);
}

int vm_virtio_create(struct vm *vm, struct chv_err *err)
{
	struct vm_virtio *v = calloc(1, sizeof(*v));
	if (!v)
		return chv_err_set(err, -ENOMEM, "out of memory");
	v->stop_fd = -1;
	v->rng.fd = -1;
	vm->virtio = v;
	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (v->epfd < 0)
		return chv_err_set(err, -errno, "virtio: epoll: %s", strerror(errno));
	v->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (v->stop_fd < 0)
		return chv_err_set(err, -errno, "virtio: eventfd: %s", strerror(errno));
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
	if (epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->stop_fd, &ev) < 0)
		return chv_err_set(err, -errno, "virtio: epoll: %s", strerror(errno));

	/* rng_ok first: destroy is safe on a half-initialised device. */
	v->rng_ok = true;
	int e = virtio_rng_init(&v->rng, &vm->mem, vm->cfg->rng.src, err);
	if (e < 0) {
		/* "rng: src=PATH: why" becomes "--rng: src=PATH: why". */
		char msg[sizeof(err->msg)];
		snprintf(msg, sizeof(msg), "%s", err ? err->msg : "rng");
		return chv_err_set(err, e, "--%s", msg);
	}
	e = dev_add(vm, v, &v->rng_dev, "rng", &v->rng.vdev, VM_PCI_SLOT_RNG, err);
	if (e < 0)
		return e;
	/* The groups' limiters first: the devices that name them draw on them. */
	for (uint32_t i = 0; i < vm->cfg->nrl_groups && i < CONFIG_MAX_RL_GROUPS; i++) {
		char what[64];
		snprintf(what, sizeof(what), "--rate-limit-group id=%s", vm->cfg->rl_groups[i].id);
		if ((e = limiter_make(v, &v->group[i], &vm->cfg->rl_groups[i].rl, what, err)) < 0)
			return e;
	}
	for (uint32_t i = 0; i < vm->cfg->ndisks && i < CONFIG_MAX_DISKS; i++) {
		if ((e = disk_add(vm, v, i, err)) < 0)
			return e;
	}
	if (vm->cfg->console.mode != CONSOLE_OFF && (e = console_add(vm, v, err)) < 0)
		return e;
	for (uint32_t j = 0; j < vm->cfg->nnets && j < CONFIG_MAX_NETS; j++) {
		if ((e = net_add(vm, v, j, err)) < 0)
			return e;
	}

	/* The thread takes no signals: they are the control thread's and the
	 * vCPUs' (kicks). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	e = pthread_create(&v->thread, NULL, event_loop, v);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (e)
		return chv_err_set(err, -e, "virtio: cannot start the device thread: %s",
				   strerror(e));
	v->thread_ok = true;
	return 0;
}

void vm_virtio_stop(struct vm *vm)
{
	struct vm_virtio *v = vm->virtio;
	if (!v || !v->thread_ok)
		return;
	uint64_t one = 1;
	ssize_t w = write(v->stop_fd, &one, sizeof(one));
	(void)w; /* cannot fail on a fresh eventfd */
	pthread_join(v->thread, NULL);
	v->thread_ok = false;
	/* No vCPU and no kick is left to start a request: once the ones in
	 * flight complete, nothing signals the MSI-X that vm_pci_destroy()
	 * is about to take away. */
	for (uint32_t i = 0; i < v->ndisks; i++)
		if (v->blk_dev[i].vp_ok)
			virtio_blk_drain(&v->blk[i]);
}

void vm_virtio_destroy(struct vm *vm)
{
	struct vm_virtio *v = vm->virtio;
	if (!v)
		return;
	vm_virtio_stop(vm);
	/* Closing the sink first ends its thread, the last caller of the
	 * console's input. */
	sink_close(v->con_sink);
	dev_free(&v->con_dev);
	if (v->con_ok)
		virtio_console_destroy(&v->con);
	for (uint32_t j = 0; j < v->nnets; j++) {
		struct netdev *nd = &v->net[j];
		dev_free(&nd->dev);
		if (nd->net_ok)
			virtio_net_destroy(&nd->net);
		tap_close(&nd->tap);
	}
	for (uint32_t i = 0; i < v->ndisks; i++) {
		/* Drained by the stop above: no completion is left to signal. */
		dev_free(&v->blk_dev[i]);
		if (v->blk_ok[i])
			virtio_blk_destroy(&v->blk[i]);
	}
	/* No device is left to wait on a limiter. */
	for (uint32_t j = 0; j < v->nnets; j++)
		limiter_free(&v->net[j].own);
	for (uint32_t i = 0; i < CONFIG_MAX_DISKS; i++)
		limiter_free(&v->blk_rl[i]);
	for (uint32_t i = 0; i < CONFIG_MAX_RL_GROUPS; i++)
		limiter_free(&v->group[i]);
	dev_free(&v->rng_dev);
	if (v->rng_ok)
		virtio_rng_destroy(&v->rng);
	if (v->stop_fd >= 0)
		close(v->stop_fd);
	if (v->epfd >= 0)
		close(v->epfd);
	free(v);
	vm->virtio = NULL;
}

static void dev_counters(struct vdev *d, uint64_t requests, uint64_t bytes, uint64_t errors,
			 vm_counter_fn fn, void *ctx)
{
	char name[48];
	const struct {
		const char *what;
		uint64_t value;
	} c[] = {
	    {"requests", requests},
	    {"bytes", bytes},
	    {"errors", errors},
	    {"notifications", __atomic_load_n(&d->notifications, __ATOMIC_RELAXED)},
	};
	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		snprintf(name, sizeof(name), "virtio.%s.%s", d->name, c[i].what);
		fn(ctx, name, c[i].value);
	}
}

static void console_counters(struct vdev *d, struct virtio_console *con, vm_counter_fn fn,
			     void *ctx)
{
	struct virtio_console_stats st;
	virtio_console_get_stats(con, &st);
	dev_counters(d, st.tx_requests + st.rx_requests, st.tx_bytes + st.rx_bytes, st.errors, fn,
		     ctx);
	const struct {
		const char *what;
		uint64_t value;
	} c[] = {
	    {"tx_requests", st.tx_requests},
	    {"tx_bytes", st.tx_bytes},
	    {"tx_dropped", st.tx_dropped},
	    {"rx_requests", st.rx_requests},
	    {"rx_bytes", st.rx_bytes},
	    {"rx_dropped", st.rx_dropped},
	    {"config_changes", st.config_changes},
	};
	char name[48];
	for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		snprintf(name, sizeof(name), "virtio.console.%s", c[k].what);
		fn(ctx, name, c[k].value);
	}
}

/* "<prefix>.<name>.throttled" and ".wakeups". */
static void limiter_counters(struct ratelimit *rl, const char *prefix, const char *name,
			     vm_counter_fn fn, void *ctx)
{
	struct ratelimit_counters rc;
	ratelimit_get_counters(rl, &rc);
	char n[48];
	snprintf(n, sizeof(n), "%s.%s.throttled", prefix, name);
	fn(ctx, n, rc.throttled);
	snprintf(n, sizeof(n), "%s.%s.wakeups", prefix, name);
	fn(ctx, n, rc.wakeups);
}

static void net_counters(struct netdev *nd, vm_counter_fn fn, void *ctx)
{
	struct virtio_net_counters nc;
	virtio_net_get_counters(&nd->net, &nc);
	dev_counters(&nd->dev, nc.rx_packets + nc.tx_packets, nc.rx_bytes + nc.tx_bytes,
		     nc.rx_errors + nc.tx_errors, fn, ctx);
	const struct {
		const char *what;
		uint64_t value;
	} c[] = {
	    {"rx_packets", nc.rx_packets},     {"rx_bytes", nc.rx_bytes},
	    {"rx_drops", nc.rx_drops},	       {"rx_errors", nc.rx_errors},
	    {"tx_packets", nc.tx_packets},     {"tx_bytes", nc.tx_bytes},
	    {"tx_drops", nc.tx_drops},	       {"tx_errors", nc.tx_errors},
	    {"interrupts", nc.interrupts},     {"tx_throttled", nc.tx_throttled},
	    {"rx_throttled", nc.rx_throttled},
	};
	char name[48];
	for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
		snprintf(name, sizeof(name), "virtio.%s.%s", nd->name, c[k].what);
		fn(ctx, name, c[k].value);
	}
}

void vm_virtio_counters(struct vm *vm, vm_counter_fn fn, void *ctx)
{
	struct vm_virtio *v = vm->virtio;
	if (!v || !v->rng_dev.vp_ok)
		return;
	/* Written by the device thread only; a torn read is impossible on
	 * aligned 64-bit words, and a stale one is fine for statistics. */
	const struct virtio_rng *r = &v->rng;
	dev_counters(&v->rng_dev, __atomic_load_n(&r->requests, __ATOMIC_RELAXED),
		     __atomic_load_n(&r->bytes, __ATOMIC_RELAXED),
		     __atomic_load_n(&r->errors, __ATOMIC_RELAXED), fn, ctx);
	for (uint32_t i = 0; i < v->ndisks; i++) {
		if (!v->blk_dev[i].vp_ok)
			continue;
		struct virtio_blk_counters bc;
		virtio_blk_get_counters(&v->blk[i], &bc);
		dev_counters(&v->blk_dev[i],
			     bc.reads + bc.writes + bc.flushes + bc.discards + bc.write_zeroes +
				 bc.get_ids,
			     bc.bytes_read + bc.bytes_written, bc.errors, fn, ctx);
		char name[48];
		const struct {
			const char *what;
			uint64_t value;
		} c[] = {
		    {"reads", bc.reads},
		    {"writes", bc.writes},
		    {"flushes", bc.flushes},
		    {"discards", bc.discards},
		    {"write_zeroes", bc.write_zeroes},
		    {"get_ids", bc.get_ids},
		    {"bytes_read", bc.bytes_read},
		    {"bytes_written", bc.bytes_written},
		    {"throttled", bc.throttled},
		};
		for (size_t k = 0; k < sizeof(c) / sizeof(c[0]); k++) {
			snprintf(name, sizeof(name), "virtio.%s.%s", v->blk_name[i], c[k].what);
			fn(ctx, name, c[k].value);
		}
	}
	if (v->con_dev.vp_ok)
		console_counters(&v->con_dev, &v->con, fn, ctx);
	for (uint32_t j = 0; j < v->nnets; j++)
		if (v->net[j].dev.vp_ok)
			net_counters(&v->net[j], fn, ctx);
	for (uint32_t i = 0; i < CONFIG_MAX_RL_GROUPS; i++)
		if (v->group[i].rl)
			limiter_counters(v->group[i].rl, "ratelimit", vm->cfg->rl_groups[i].id, fn,
					 ctx);
}

/* The server's life: gRPC setup, completion-queue threads, our own accept
 * loop (so every connection's SO_PEERCRED is known), TCP listeners with
 * mutual TLS (gRPC accepts those itself: fd channels cannot carry TLS),
 * graceful shutdown. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grpc/grpc_posix.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "daemon/rpc_internal.h"

#define RPC_DEFAULT_MAX_MESSAGE (4u << 20)
#define RPC_ACCEPT_BACKOFF_MS	100

static void *cq_thread(void *arg)
{
	struct rpc_server *s = arg;

	for (;;) {
		grpc_event ev =
		    grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
		if (ev.type == GRPC_QUEUE_SHUTDOWN)
			break;
		if (ev.type == GRPC_OP_COMPLETE) {
			struct rpc_op *op = ev.tag;
			op->on_done(op, ev.success != 0);
		}
	}
	return NULL;
}

void rpc_server_call_released(struct rpc_server *s)
{
	pthread_mutex_lock(&s->lock);
	if (--s->live == 0)
		pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

bool rpc_server_peer_find(struct rpc_server *s, int fd, struct rpc_peer *out)
{
	bool found = false;

	pthread_mutex_lock(&s->lock);
	for (size_t i = 0; i < s->npeers; i++) {
		if (s->peers[i].fd == fd) {
			*out = s->peers[i];
			found = true;
			break;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return found;
}

/* Remembers who is on the other end of fd and through which kind of
 * listener (replacing what an earlier, closed connection with the same
 * number left) and tells on_connect/on_accept. A connection whose record
 * cannot be kept must not be served: its calls would lose the read-only
 * restriction. */
static int peer_record(struct rpc_server *s, int fd, bool read_only)
{
	struct rpc_peer p = {
	    .fd = fd, .pid = -1, .uid = (uid_t)-1, .gid = (gid_t)-1, .read_only = read_only};
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && len == sizeof(cred)) {
		p.pid = cred.pid;
		p.uid = cred.uid;
		p.gid = cred.gid;
	}
	pthread_mutex_lock(&s->lock);
	size_t i;
	for (i = 0; i < s->npeers && s->peers[i].fd != fd; i++)
		;
	if (i < s->npeers) {
		s->peers[i] = p;
	} else {
		struct rpc_peer *n = realloc(s->peers, (s->npeers + 1) * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&s->lock);
			return -ENOMEM;
		}
		s->peers = n;
		s->peers[s->npeers++] = p;
	}
	pthread_mutex_unlock(&s->lock);
	if (s->opts.on_connect)
		s->opts.on_connect(s->opts.on_connect_ctx, fd, p.pid, p.uid, p.gid);
	if (s->opts.on_accept)
		s->opts.on_accept(s->opts.on_accept_ctx, &p);
	return 0;
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

/* gRPC stalls on blocking fds, and owns fd from here on. */
static void serve_fd(struct rpc_server *s, int fd, bool read_only)
{
	if (peer_record(s, fd, read_only) < 0) {
		fprintf(stderr, "chvd: rpc: out of memory: dropping connection fd %d\n", fd);
		close(fd);
		return;
	}
	grpc_server_add_channel_from_fd(s->gs, fd, s->creds);
}

/* Returns false when the wake eventfd fired during the wait. */
static bool backoff(struct rpc_server *s)
{
	struct pollfd p = {.fd = s->wake_fd, .events = POLLIN};
	return poll(&p, 1, RPC_ACCEPT_BACKOFF_MS) <= 0;
}

static void *accept_thread(void *arg)
{
	struct rpc_server *s = arg;
	size_t n = s->nlisteners;
	struct pollfd *pfd = calloc(n + 1, sizeof(*pfd));

	if (!pfd) {
		fprintf(stderr, "chvd: rpc: accept thread: out of memory\n");
		return NULL;
	}
	for (size_t i = 0; i < n; i++)
		pfd[i] = (struct pollfd){.fd = s->listeners[i].fd, .events = POLLIN};
	pfd[n] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};

	for (;;) {
		if (poll(pfd, n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "chvd: rpc: poll: %s\n", strerror(errno));
			if (!backoff(s))
				break;
			continue;
		}
		if (pfd[n].revents)
			break;
		for (size_t i = 0; i < n; i++) {
			if (!pfd[i].revents)
				continue;
			for (;;) {
				int fd =
				    accept4(pfd[i].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
				if (fd >= 0) {
					serve_fd(s, fd, s->listeners[i].read_only);
					continue;
				}
				if (errno == EINTR || errno == ECONNABORTED || errno == EPROTO)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					break;
				/* EMFILE, ENFILE, ENOBUFS, ENOMEM: wait for fds
				 * or memory to come back instead of spinning. */
				fprintf(stderr, "chvd: rpc: accept on fd %d: %s\n", pfd[i].fd,
					strerror(errno));
				if (!backoff(s))
					goto out;
				break;
			}
		}
	}
out:
	free(pfd);
	return NULL;
}

/* Safe on a half-built server; the server must not be serving. */
static void server_free(struct rpc_server *s)
{
	if (s->cq) {
		grpc_completion_queue_shutdown(s->cq);
		if (s->threads_started == 0) {
			while (grpc_completion_queue_next(s->cq, gpr_inf_future(GPR_CLOCK_REALTIME),
							  NULL)
				   .type != GRPC_QUEUE_SHUTDOWN)
				;
		}
		for (unsigned i = 0; i < s->threads_started; i++)
			pthread_join(s->threads[i], NULL);
		grpc_completion_queue_destroy(s->cq);
	}
	if (s->creds)
		grpc_server_credentials_release(s->creds);
	for (size_t i = 0; i < s->nlisteners; i++)
		close(s->listeners[i].fd);
	for (size_t i = 0; i < s->npending; i++)
		close(s->pending_fds[i]);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	free(s->listeners);
	free(s->pending_fds);
	free(s->regs);
	free(s->peers);
	free(s->denied_hint);
	free(s->threads);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s);
	grpc_shutdown_blocking();
}

static void on_shutdown(struct rpc_op *op, bool ok)
{
	(void)ok;
	struct rpc_server *s =
	    (struct rpc_server *)((char *)op - offsetof(struct rpc_server, shutdown_op));
	pthread_mutex_lock(&s->lock);
	s->shutdown_notified = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int rpc_server_create(struct rpc_server **out, const struct rpc_server_opts *opts,
		      struct chv_err *err)
{
	struct rpc_server *s = calloc(1, sizeof(*s));

	*out = NULL;
	if (!s)
		return chv_err_set(err, -ENOMEM, "rpc server: out of memory");
	if (opts)
		s->opts = *opts;
	if (s->opts.max_message_bytes == 0)
		s->opts.max_message_bytes = RPC_DEFAULT_MAX_MESSAGE;
	if (s->opts.max_message_bytes > INT_MAX) {
		int r = chv_err_set(err, -EINVAL,
				    "rpc server: max_message_bytes=%zu is over the limit of %d",
				    s->opts.max_message_bytes, INT_MAX);
		free(s);
		return r;
	}
	s->nthreads = s->opts.threads ? s->opts.threads : 2;
	if (s->nthreads > 64) {
		int r = chv_err_set(err, -EINVAL, "rpc server: threads=%u is over the limit of 64",
				    s->nthreads);
		free(s);
		return r;
	}
	s->wake_fd = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->shutdown_op.on_done = on_shutdown;
	grpc_init();

	s->threads = calloc(s->nthreads, sizeof(*s->threads));
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (!s->threads || s->wake_fd < 0) {
		int r =
		    chv_err_set(err, s->threads ? -errno : -ENOMEM, "rpc server: setting up: %s",
				strerror(s->threads ? errno : ENOMEM));
		server_free(s);
		return r;
	}

	grpc_arg args[] = {
	    {.type = GRPC_ARG_INTEGER,
	     .key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH,
	     .value.integer = (int)s->opts.max_message_bytes},
	    /* gRPC sets SO_REUSEPORT by default: a second chvd would then
	     * share our TCP port instead of failing to bind it. */
	    {.type = GRPC_ARG_INTEGER, .key = GRPC_ARG_ALLOW_REUSEPORT, .value.integer = 0},
	};
	grpc_channel_args cargs = {.num_args = sizeof(args) / sizeof(args[0]), .args = args};
	s->gs = grpc_server_create(&cargs, NULL);
	s->cq = grpc_completion_queue_create_for_next(NULL);
	s->creds = grpc_insecure_server_credentials_create();
	if (!s->gs || !s->cq || !s->creds) {
		if (s->gs)
			grpc_server_destroy(s->gs);
		server_free(s);
		return chv_err_set(err, -ENOMEM, "rpc server: gRPC setup failed");
	}
	grpc_server_register_completion_queue(s->gs, s->cq, NULL);
	*out = s;
	return 0;
}

int rpc_server_add_methods(struct rpc_server *s, const struct rpc_method *m, size_t n,
			   struct chv_err *err)
{
	if (s->started)
		return chv_err_set(err, -EBUSY, "rpc server: methods must be added before start");
	for (size_t i = 0; i < n; i++) {
		const char *p = m[i].path;
		if (!p || p[0] != '/' || !strchr(p + 1, '/') || strchr(p + 1, '/')[1] == '\0')
			return chv_err_set(
			    err, -EINVAL,
			    "rpc server: method path '%s' is not /package.Service/Method",
			    p ? p : "(null)");
		if (!m[i].handler || !m[i].req || !m[i].resp ||
		    (m[i].kind != RPC_UNARY && m[i].kind != RPC_SERVER_STREAM &&
		     m[i].kind != RPC_BIDI))
			return chv_err_set(
			    err, -EINVAL,
			    "rpc server: method %s lacks a handler, descriptors or a valid kind",
			    p);
		for (size_t j = 0; j < s->nregs; j++)
			if (strcmp(s->regs[j].m->path, p) == 0)
				return chv_err_set(err, -EEXIST,
						   "rpc server: method %s added twice", p);
	}
	struct rpc_reg *regs = realloc(s->regs, (s->nregs + n) * sizeof(*regs));
	if (!regs && s->nregs + n)
		return chv_err_set(err, -ENOMEM, "rpc server: out of memory");
	s->regs = regs;
	for (size_t i = 0; i < n; i++) {
		grpc_server_register_method_payload_handling ph =
		    m[i].kind == RPC_BIDI ? GRPC_SRM_PAYLOAD_NONE
					  : GRPC_SRM_PAYLOAD_READ_INITIAL_BYTE_BUFFER;
		void *h = grpc_server_register_method(s->gs, m[i].path, NULL, ph, 0);
		if (!h)
			return chv_err_set(err, -EEXIST, "rpc server: gRPC refused method %s",
					   m[i].path);
		s->regs[s->nregs++] = (struct rpc_reg){.m = &m[i], .handle = h};
	}
	return 0;
}

static int add_listener(struct rpc_server *s, int fd, bool read_only, struct chv_err *err)
{
	int acc = 0, type = 0;
	socklen_t len = sizeof(int);

	if (s->started) {
		close(fd);
		return chv_err_set(err, -EBUSY, "rpc server: listeners must be added before start");
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &len) < 0 || !acc ||
	    (len = sizeof(int), getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0) ||
	    type != SOCK_STREAM) {
		close(fd);
		return chv_err_set(err, -EINVAL,
				   "rpc server: fd %d is not a listening stream socket", fd);
	}
	int r = set_nonblock(fd);
	struct rpc_listener *l = r ? NULL : realloc(s->listeners, (s->nlisteners + 1) * sizeof(*l));
	if (!l) {
		close(fd);
		return chv_err_set(err, r ? r : -ENOMEM, "rpc server: adding listener fd %d: %s",
				   fd, strerror(r ? -r : ENOMEM));
	}
	s->listeners = l;
	s->listeners[s->nlisteners++] = (struct rpc_listener){.fd = fd, .read_only = read_only};
	return 0;
}

int rpc_server_add_listener(struct rpc_server *s, int fd, struct chv_err *err)
{
	return add_listener(s, fd, false, err);
}

int rpc_server_add_read_only_listener(struct rpc_server *s, int fd, struct chv_err *err)
{
	return add_listener(s, fd, true, err);
}

int rpc_addr_split(const char *addr, char *host, size_t hostlen, unsigned *port)
{
	const char *h, *hend, *p;

	if (!addr || !*addr)
		return -EINVAL;
	if (addr[0] == '[') {
		h = addr + 1;
		hend = strchr(h, ']');
		if (!hend || hend[1] != ':')
			return -EINVAL;
		p = hend + 2;
	} else {
		h = addr;
		hend = strrchr(addr, ':');
		if (!hend || memchr(h, ':', (size_t)(hend - h)))
			return -EINVAL; /* no port, or an IPv6 address without brackets */
		p = hend + 1;
	}
	if (hend == h || !*p || strlen(p) > 5)
		return -EINVAL;
	unsigned v = 0;
	for (const char *q = p; *q; q++) {
		if (!isdigit((unsigned char)*q))
			return -EINVAL;
		v = v * 10 + (unsigned)(*q - '0');
	}
	if (v > 65535)
		return -EINVAL;
	size_t n = (size_t)(hend - h);
	if (n >= hostlen)
		return -ENAMETOOLONG;
	memcpy(host, h, n);
	host[n] = '\0';
	*port = v;
	return 0;
}

bool rpc_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (!host)
		return false;
	/* Names other than localhost could resolve anywhere (RFC 6761 keeps
	 * this one on the machine). */
	if (strcasecmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6) ||
		       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
	return false;
}

static grpc_server_credentials *tls_server_creds(const struct rpc_tls *tls)
{
	grpc_ssl_pem_key_cert_pair pair = {.private_key = tls->key_pem,
					   .cert_chain = tls->cert_pem};
	return grpc_ssl_server_credentials_create_ex(
	    tls->client_ca_pem, &pair, 1,
	    GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY, NULL);
}

int rpc_server_add_tcp(struct rpc_server *s, const char *addr, const struct rpc_tls *tls,
		       int *bound_port, struct chv_err *err)
{
	char host[256];
	unsigned port;

	*bound_port = 0;
	if (s->started)
		return chv_err_set(err, -EBUSY, "rpc server: listeners must be added before start");
	int r = rpc_addr_split(addr, host, sizeof(host), &port);
	if (r < 0)
		return chv_err_set(err, r, "rpc server: \"%s\" is not HOST:PORT", addr ? addr : "");
	if (!tls && !rpc_host_is_loopback(host))
		return chv_err_set(err, -EPERM,
				   "rpc server: refusing TCP without TLS on %s: %s is not a "
				   "loopback address",
				   addr, host);
	if (tls && (!tls->cert_pem || !*tls->cert_pem || !tls->key_pem || !*tls->key_pem ||
		    !tls->client_ca_pem || !*tls->client_ca_pem))
		return chv_err_set(
		    err, -EINVAL,
		    "rpc server: TLS on %s needs a certificate, a key and a client CA", addr);
	grpc_server_credentials *creds =
	    tls ? tls_server_creds(tls) : grpc_insecure_server_credentials_create();
	if (!creds)
		return chv_err_set(err, -EINVAL, "rpc server: %s: cannot make %s credentials", addr,
				   tls ? "TLS" : "insecure");
	/* gRPC binds here and checks the certificate and key now; it keeps
	 * its own reference to creds. */
	int got = grpc_server_add_http2_port(s->gs, addr, creds);
	grpc_server_credentials_release(creds);
	if (got <= 0)
		return chv_err_set(err, -EADDRNOTAVAIL, "rpc server: cannot listen on %s (%s)",
				   addr,
				   tls ? "address in use or not local, or the TLS certificate, "
					 "key or CA is unusable: see gRPC's log line above"
				       : "address in use or not local");
	*bound_port = got;
	return 0;
}

int rpc_server_add_connection(struct rpc_server *s, int fd, struct chv_err *err)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
		close(fd);
		return chv_err_set(err, -EINVAL, "rpc server: fd %d is not a stream socket", fd);
	}
	int r = set_nonblock(fd);
	if (r < 0) {
		close(fd);
		return chv_err_set(err, r, "rpc server: fd %d: O_NONBLOCK: %s", fd, strerror(-r));
	}
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		close(fd);
		return chv_err_set(err, -ESHUTDOWN, "rpc server: shutting down");
	}
	if (!s->started) {
		int *p = realloc(s->pending_fds, (s->npending + 1) * sizeof(*p));
		if (!p) {
			pthread_mutex_unlock(&s->lock);
			close(fd);
			return chv_err_set(err, -ENOMEM, "rpc server: out of memory");
		}
		s->pending_fds = p;
		s->pending_fds[s->npending++] = fd;
		pthread_mutex_unlock(&s->lock);
		return 0;
	}
	pthread_mutex_unlock(&s->lock);
	serve_fd(s, fd, false);
	return 0;
}

/* "Vmm/Ping, Vm/Info, ...": the read_only methods, named without their
 * package, for the message that refuses the others. */
static char *read_only_names(const struct rpc_server *s)
{
	size_t cap = 1;
	for (size_t i = 0; i < s->nregs; i++)
		cap += strlen(s->regs[i].m->path) + 2;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t n = 0;
	out[0] = '\0';
	for (size_t i = 0; i < s->nregs; i++) {
		if (!s->regs[i].m->read_only)
			continue;
		const char *p = s->regs[i].m->path + 1;
		const char *slash = strchr(p, '/');
		const char *dot = memrchr(p, '.', (size_t)(slash - p));
		n += (size_t)snprintf(out + n, cap - n, "%s%s", n ? ", " : "", dot ? dot + 1 : p);
	}
	return out;
}

int rpc_server_start(struct rpc_server *s, struct chv_err *err)
{
	if (s->started)
		return chv_err_set(err, -EBUSY, "rpc server: already started");
	if (!(s->denied_hint = read_only_names(s)))
		return chv_err_set(err, -ENOMEM, "rpc server: out of memory");
	grpc_server_start(s->gs);
	pthread_mutex_lock(&s->lock);
	s->started = true;
	pthread_mutex_unlock(&s->lock);

	for (unsigned i = 0; i < s->nthreads; i++) {
		int r = pthread_create(&s->threads[i], NULL, cq_thread, s);
		if (r) {
			/* rpc_server_shutdown() undoes what was started. */
			return chv_err_set(err, -r, "rpc server: starting thread %u: %s", i,
					   strerror(r));
		}
		s->threads_started++;
	}
	/* Several slots per method so a burst of calls is matched at once. */
	for (unsigned k = 0; k < s->nthreads; k++) {
		for (size_t i = 0; i < s->nregs; i++) {
			int r = rpc_call_post(s, i);
			if (r < 0)
				return chv_err_set(err, r, "rpc server: posting %s: %s",
						   s->regs[i].m->path, strerror(-r));
		}
		int r = rpc_call_post(s, RPC_GENERIC);
		if (r < 0)
			return chv_err_set(err, r, "rpc server: posting the catch-all: %s",
					   strerror(-r));
	}
	for (size_t i = 0; i < s->npending; i++)
		serve_fd(s, s->pending_fds[i], false);
	s->npending = 0;
	if (s->nlisteners) {
		int r = pthread_create(&s->accept_thread, NULL, accept_thread, s);
		if (r)
			return chv_err_set(err, -r, "rpc server: starting the accept thread: %s",
					   strerror(r));
		s->accept_running = true;
	}
	return 0;
}

/* Done: the shutdown tag came back and every slot and call was released. */
static bool wait_drained(struct rpc_server *s, const struct timespec *deadline)
{
	pthread_mutex_lock(&s->lock);
	while (!s->shutdown_notified || s->live) {
		if (!deadline) {
			pthread_cond_wait(&s->cond, &s->lock);
		} else if (pthread_cond_timedwait(&s->cond, &s->lock, deadline) == ETIMEDOUT) {
			break;
		}
	}
	bool r = s->shutdown_notified && !s->live;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* rpc_server_start() failed before any queue thread ran: poll here. */
static void drain_inline(struct rpc_server *s)
{
	grpc_server_cancel_all_calls(s->gs);
	for (;;) {
		pthread_mutex_lock(&s->lock);
		bool done = s->shutdown_notified && !s->live;
		pthread_mutex_unlock(&s->lock);
		if (done)
			break;
		grpc_event ev = grpc_completion_queue_next(
		    s->cq,
		    gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
				 gpr_time_from_millis(100, GPR_TIMESPAN)),
		    NULL);
		if (ev.type == GRPC_OP_COMPLETE)
			((struct rpc_op *)ev.tag)->on_done(ev.tag, ev.success != 0);
	}
}

void rpc_server_shutdown(struct rpc_server *s, unsigned grace_ms)
{
	if (!s)
		return;
	if (s->accept_running) {
		uint64_t one = 1;
		(void)!write(s->wake_fd, &one, sizeof(one));
		pthread_join(s->accept_thread, NULL);
		s->accept_running = false;
	}
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	bool started = s->started;
	pthread_mutex_unlock(&s->lock);

	if (started) {
		grpc_server_shutdown_and_notify(s->gs, s->cq, &s->shutdown_op);
		/* The cond was set up with the default (realtime) clock. */
		struct timespec dl;
		clock_gettime(CLOCK_REALTIME, &dl);
		dl.tv_sec += grace_ms / 1000;
		dl.tv_nsec += (long)(grace_ms % 1000) * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		if (s->threads_started == 0)
			drain_inline(s);
		else if (!wait_drained(s, &dl)) {
			/* Streams see rpc_call_cancelled() and their cancel callbacks. */
			grpc_server_cancel_all_calls(s->gs);
			wait_drained(s, NULL);
		}
	}
	grpc_server_destroy(s->gs);
	server_free(s);
}

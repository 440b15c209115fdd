/* Worker connections and the supervisor thread. Lock order: the supervisor's
 * dispatch lock, then a wconn's lock. Callbacks (on_notice, on_dead) run with
 * the dispatch lock held, so wconn_close() (which takes it) guarantees no
 * callback runs after it returns; callers must not hold locks that the
 * callbacks take while calling wconn_close(). */
#include "daemon/wconn.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/dlog.h"
#include "vm/confine.h"

#define WCONN_MAX_PACKET (1u << 20)

struct pending {
	uint64_t seq;
	Chv__Worker__V1__Reply *reply;
	bool done;
	struct pending *next;
};

struct wconn {
	int fd;
	pid_t pid;
	const struct wconn_ops *ops;
	void *ctx;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint64_t next_seq;
	struct pending *pending;
	bool dead;	/* the connection ended */
	bool closing;	/* wconn_close() was called: no more callbacks */
	char *log_path; /* NULL: unknown (a re-adopted worker) */
	struct wconn *next_release;
};

static struct {
	const char *seccomp;
	const char *vm_user; /* NULL: none */
} worker_args = {"true", NULL};

void wconn_set_worker_options(const char *seccomp, const char *vm_user)
{
	worker_args.seccomp = seccomp ? seccomp : "true";
	worker_args.vm_user = vm_user;
}

/* A dead worker's cgroup directory (vm/confine.c made it), best effort. */
static void remove_cgroup(pid_t pid)
{
	char dir[PATH_MAX];
	if (pid > 0 && confine_cgroup_dir(pid, dir, sizeof(dir)) == 0)
		(void)rmdir(dir);
}

/* The last line of the log that starts with prefix, without its newline. */
static bool last_line(const char *log_path, const char *prefix, char *out, size_t len)
{
	if (!log_path)
		return false;
	int fd = open(log_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	char buf[8192];
	off_t end = lseek(fd, 0, SEEK_END);
	off_t from = end > (off_t)sizeof(buf) - 1 ? end - (off_t)sizeof(buf) + 1 : 0;
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, from);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	bool found = false;
	size_t plen = strlen(prefix);
	for (char *line = buf; line && *line;) {
		char *nl = strchr(line, '\n');
		if (nl)
			*nl = 0;
		if (strncmp(line, prefix, plen) == 0) {
			snprintf(out, len, "%s", line);
			found = true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return found;
}

static struct {
	pthread_mutex_t dispatch; /* held while handling one event */
	int epfd;
	int wake; /* eventfd: releases to process, or stop */
	pthread_t thread;
	bool running, stop;
	struct wconn *release; /* closed connections to free after the batch */
	pid_t orphans[4096];   /* children whose connection closed first: reap later */
	unsigned norphans;
} sup = {.dispatch = PTHREAD_MUTEX_INITIALIZER, .epfd = -1, .wake = -1};

static void reap_orphans(void)
{
	for (unsigned i = 0; i < sup.norphans;) {
		if (waitpid(sup.orphans[i], NULL, WNOHANG) != 0) {
			remove_cgroup(sup.orphans[i]);
			sup.orphans[i] = sup.orphans[--sup.norphans];
		} else
			i++;
	}
}

static void add_orphan(pid_t pid)
{
	if (pid > 0 && sup.norphans < sizeof(sup.orphans) / sizeof(sup.orphans[0]))
		sup.orphans[sup.norphans++] = pid;
}

/* How a child ended, waiting briefly: the socket closes a moment before exit.
 * A worker killed by its seccomp filter said which call on its standard
 * error (the log): that line is the reason's end. */
static void death_reason(pid_t pid, const char *log_path, char *buf, size_t len)
{
	if (pid <= 0) {
		snprintf(buf, len, "worker closed its control connection");
		return;
	}
	int status;
	for (int i = 0; i < 100; i++) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			char word[320];
			if (WIFSIGNALED(status) && WTERMSIG(status) == SIGSYS &&
			    last_line(log_path, "chv: seccomp: ", word, sizeof(word)))
				snprintf(buf, len, "worker process %d killed by signal %d (%s): %s",
					 pid, WTERMSIG(status), strsignal(WTERMSIG(status)), word);
			else if (WIFSIGNALED(status))
				snprintf(buf, len, "worker process %d killed by signal %d (%s)",
					 pid, WTERMSIG(status), strsignal(WTERMSIG(status)));
			else if (WEXITSTATUS(status) &&
				 last_line(log_path, "chv-vmm: ", word, sizeof(word)))
				snprintf(buf, len, "worker process %d exited with status %d: %s",
					 pid, WEXITSTATUS(status), word);
			else
				snprintf(buf, len, "worker process %d exited with status %d", pid,
					 WEXITSTATUS(status));
			remove_cgroup(pid);
			return;
		}
		if (r < 0) { /* not our child (re-adopted) */
			snprintf(buf, len, "worker process %d exited", pid);
			return;
		}
		usleep(5000);
	}
	add_orphan(pid);
	snprintf(buf, len, "worker process %d closed its control connection", pid);
}

static void fail_pending(struct wconn *w)
{
	pthread_mutex_lock(&w->lock);
	w->dead = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static void handle_dead(struct wconn *w)
{
	epoll_ctl(sup.epfd, EPOLL_CTL_DEL, w->fd, NULL);
	fail_pending(w);
	char reason[640];
	death_reason(w->pid, w->log_path, reason, sizeof(reason));
	w->pid = 0;
	if (w->ops->on_dead)
		w->ops->on_dead(w->ctx, reason);
}

static void handle_packet(struct wconn *w, const uint8_t *buf, size_t n)
{
	Chv__Worker__V1__WorkerMessage *m = chv__worker__v1__worker_message__unpack(NULL, n, buf);
	if (!m) {
		dlog(DLOG_WARNING, NULL, "worker %d: undecodable message of %zu bytes dropped",
		     w->pid, n);
		return;
	}
	if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_REPLY) {
		pthread_mutex_lock(&w->lock);
		for (struct pending *p = w->pending; p; p = p->next) {
			if (p->seq == m->reply->seq && !p->done) {
				p->reply = m->reply;
				m->reply = NULL; /* moved */
				p->done = true;
				pthread_cond_broadcast(&w->cond);
				break;
			}
		}
		pthread_mutex_unlock(&w->lock);
		if (m->reply) /* nobody waits for it (timed out) */
			dlog(DLOG_DEBUG, NULL, "worker %d: late reply %llu dropped", w->pid,
			     (unsigned long long)m->reply->seq);
	} else if (m->msg_case == CHV__WORKER__V1__WORKER_MESSAGE__MSG_NOTICE &&
		   w->ops->on_notice) {
		w->ops->on_notice(w->ctx, m->notice);
	}
	chv__worker__v1__worker_message__free_unpacked(m, NULL);
}

static void free_wconn(struct wconn *w)
{
	free(w->log_path);
	close(w->fd);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

static void *supervisor(void *arg)
{
	(void)arg;
	uint8_t *buf = malloc(WCONN_MAX_PACKET);
	struct epoll_event ev[32];
	while (buf) {
		int n = epoll_wait(sup.epfd, ev, 32, 1000);
		pthread_mutex_lock(&sup.dispatch);
		for (int i = 0; i < n; i++) {
			struct wconn *w = ev[i].data.ptr;
			if (!w) {
				uint64_t v;
				ssize_t r = read(sup.wake, &v, sizeof(v));
				(void)r;
				continue;
			}
			if (w->closing || w->dead)
				continue;
			ssize_t got = recv(w->fd, buf, WCONN_MAX_PACKET, MSG_DONTWAIT);
			if (got > 0)
				handle_packet(w, buf, (size_t)got);
			else if (got == 0 || (errno != EAGAIN && errno != EINTR))
				handle_dead(w);
		}
		/* Connections closed during this batch are freed only now, when no
		 * event of the batch can point at them any more. */
		struct wconn *rel = sup.release;
		sup.release = NULL;
		reap_orphans();
		bool stop = sup.stop;
		pthread_mutex_unlock(&sup.dispatch);
		while (rel) {
			struct wconn *next = rel->next_release;
			free_wconn(rel);
			rel = next;
		}
		if (stop)
			break;
	}
	free(buf);
	return NULL;
}

int wconn_supervisor_start(struct chv_err *err)
{
	sup.epfd = epoll_create1(EPOLL_CLOEXEC);
	sup.wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sup.epfd < 0 || sup.wake < 0)
		return chv_err_set(err, -errno, "supervisor: %s", strerror(errno));
	struct epoll_event e = {.events = EPOLLIN, .data.ptr = NULL};
	epoll_ctl(sup.epfd, EPOLL_CTL_ADD, sup.wake, &e);
	int r = pthread_create(&sup.thread, NULL, supervisor, NULL);
	if (r)
		return chv_err_set(err, -r, "supervisor thread: %s", strerror(r));
	pthread_setname_np(sup.thread, "supervisor");
	sup.running = true;
	return 0;
}

static void wake_supervisor(void)
{
	uint64_t one = 1;
	ssize_t r = write(sup.wake, &one, sizeof(one));
	(void)r;
}

void wconn_supervisor_stop(void)
{
	if (!sup.running)
		return;
	pthread_mutex_lock(&sup.dispatch);
	sup.stop = true;
	pthread_mutex_unlock(&sup.dispatch);
	wake_supervisor();
	pthread_join(sup.thread, NULL);
	sup.running = false;
	close(sup.epfd);
	close(sup.wake);
}

void wconn_kill_spawned(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	remove_cgroup(pid);
}

int wconn_spawn(const char *vmm, const char *sock_path, const char *log_path, int timeout_ms,
		pid_t *pid, struct chv_err *err)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
	posix_spawn_file_actions_adddup2(&fa, 1, 2);
	posix_spawnattr_init(&at);
	sigset_t none;
	sigemptyset(&none);
	posix_spawnattr_setsigmask(&at, &none);
	sigset_t dflt;
	sigfillset(&dflt);
	posix_spawnattr_setsigdefault(&at, &dflt);
	/* Its own session: the worker outlives chvd (restart, upgrade, crash). */
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					  POSIX_SPAWN_SETSIGDEF);
	char *argv[9] = {(char *)vmm,	    "--worker",	 "--control",
			 (char *)sock_path, "--seccomp", (char *)worker_args.seccomp};
	if (worker_args.vm_user) {
		argv[6] = "--vm-user";
		argv[7] = (char *)worker_args.vm_user;
	}
	extern char **environ;
	unlink(sock_path);
	int r = posix_spawn(pid, vmm, &fa, &at, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (r)
		return chv_err_set(err, -r, "cannot start worker %s: %s", vmm, strerror(r));
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct stat st;
		if (stat(sock_path, &st) == 0 && S_ISSOCK(st.st_mode))
			return 0;
		int status;
		if (waitpid(*pid, &status, WNOHANG) == *pid) {
			remove_cgroup(*pid);
			return chv_err_set(err, -ECHILD,
					   "worker %s exited at start-up (status %d); see %s", vmm,
					   WIFEXITED(status) ? WEXITSTATUS(status) : -1, log_path);
		}
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >
		    timeout_ms) {
			wconn_kill_spawned(*pid);
			unlink(sock_path); /* in case it appeared at the last moment */
			return chv_err_set(err, -ETIMEDOUT, "worker did not open %s in %d ms",
					   sock_path, timeout_ms);
		}
		usleep(500);
	}
}

int wconn_connect(struct wconn **out, const char *sock_path, pid_t pid, const char *log_path,
		  const struct wconn_ops *ops, void *ctx, struct chv_err *err)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(sock_path) >= sizeof(a.sun_path))
		return chv_err_set(err, -ENAMETOOLONG, "socket path too long: %s", sock_path);
	strcpy(a.sun_path, sock_path);
	int fd = -1, r = 0;
	/* The worker's socket appears already listening (it renames it into
	 * place), so a refusal means a worker that is going away: retry briefly. */
	for (int i = 0; i < 100; i++) {
		fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
		if (fd < 0)
			return chv_err_set(err, -errno, "socket: %s", strerror(errno));
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
			break;
		r = -errno;
		close(fd);
		fd = -1;
		if (r != -ECONNREFUSED && r != -ENOENT && r != -EAGAIN)
			break;
		usleep(1000);
	}
	if (fd < 0)
		return chv_err_set(err, r, "cannot connect to worker at %s: %s", sock_path,
				   strerror(-r));
	if (pid <= 0) { /* a re-adopted worker: the kernel knows who listens */
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0)
			pid = cred.pid;
	}
	struct wconn *w = calloc(1, sizeof(*w));
	if (!w || (log_path && !(w->log_path = strdup(log_path)))) {
		free(w);
		close(fd);
		return chv_err_set(err, -ENOMEM, "out of memory");
	}
	w->fd = fd;
	w->pid = pid;
	w->ops = ops;
	w->ctx = ctx;
	w->next_seq = 1;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	struct epoll_event e = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = w};
	pthread_mutex_lock(&sup.dispatch);
	r = epoll_ctl(sup.epfd, EPOLL_CTL_ADD, fd, &e) < 0 ? -errno : 0;
	pthread_mutex_unlock(&sup.dispatch);
	if (r < 0) {
		free_wconn(w);
		return chv_err_set(err, r, "epoll: %s", strerror(-r));
	}
	*out = w;
	return 0;
}

static int send_request(struct wconn *w, Chv__Worker__V1__Request *req)
{
	size_t n = chv__worker__v1__request__get_packed_size(req);
	if (n > WCONN_MAX_PACKET)
		return -EMSGSIZE;
	uint8_t *buf = malloc(n ? n : 1);
	if (!buf)
		return -ENOMEM;
	chv__worker__v1__request__pack(req, buf);
	ssize_t s = send(w->fd, buf, n, MSG_NOSIGNAL);
	int r = s == (ssize_t)n ? 0 : (s < 0 ? -errno : -EIO);
	free(buf);
	return r;
}

int wconn_send(struct wconn *w, Chv__Worker__V1__Request *req)
{
	pthread_mutex_lock(&w->lock);
	req->seq = w->next_seq++;
	int r = w->dead ? -EPIPE : send_request(w, req);
	pthread_mutex_unlock(&w->lock);
	return r;
}

struct wconn_call {
	struct pending p;
	int err; /* of the send */
};

int wconn_begin(struct wconn *w, Chv__Worker__V1__Request *req, struct wconn_call **call)
{
	struct wconn_call *c = calloc(1, sizeof(*c));
	*call = c;
	if (!c)
		return -ENOMEM;
	pthread_mutex_lock(&w->lock);
	if (w->dead) {
		c->err = -EPIPE;
	} else {
		c->p.seq = req->seq = w->next_seq++;
		c->p.next = w->pending;
		w->pending = &c->p;
		c->err = send_request(w, req);
	}
	pthread_mutex_unlock(&w->lock);
	return c->err;
}

int wconn_finish(struct wconn *w, struct wconn_call *c, Chv__Worker__V1__Reply **reply,
		 int timeout_ms)
{
	struct timespec dl;
	clock_gettime(CLOCK_REALTIME, &dl);
	dl.tv_sec += timeout_ms / 1000;
	dl.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (dl.tv_nsec >= 1000000000) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&w->lock);
	int r = c->err;
	while (r == 0 && !c->p.done && !w->dead)
		if (pthread_cond_timedwait(&w->cond, &w->lock, &dl) == ETIMEDOUT)
			r = -ETIMEDOUT;
	if (r == 0 && !c->p.done)
		r = -EPIPE;
	for (struct pending **pp = &w->pending; *pp; pp = &(*pp)->next)
		if (*pp == &c->p) {
			*pp = c->p.next;
			break;
		}
	pthread_mutex_unlock(&w->lock);
	Chv__Worker__V1__Reply *got = c->p.reply;
	free(c);
	if (r < 0) {
		if (got)
			chv__worker__v1__reply__free_unpacked(got, NULL);
		return r;
	}
	*reply = got;
	return 0;
}

int wconn_request(struct wconn *w, Chv__Worker__V1__Request *req, Chv__Worker__V1__Reply **reply,
		  int timeout_ms)
{
	struct wconn_call *c;
	int r = wconn_begin(w, req, &c);
	if (!c)
		return r;
	return wconn_finish(w, c, reply, timeout_ms);
}

bool wconn_rebind(struct wconn *w, const struct wconn_ops *ops, void *ctx)
{
	/* Callbacks run under the dispatch lock: none is half-way through. */
	pthread_mutex_lock(&sup.dispatch);
	bool alive = !w->dead && !w->closing;
	if (alive) {
		w->ops = ops;
		w->ctx = ctx;
	}
	pthread_mutex_unlock(&sup.dispatch);
	return alive;
}

pid_t wconn_pid(const struct wconn *w)
{
	return w ? w->pid : 0;
}

void wconn_set_log(struct wconn *w, const char *log_path)
{
	char *p = strdup(log_path);
	pthread_mutex_lock(&sup.dispatch); /* death_reason reads it under this */
	free(w->log_path);
	w->log_path = p;
	pthread_mutex_unlock(&sup.dispatch);
}

void wconn_close(struct wconn *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&sup.dispatch);
	w->closing = true;
	if (!w->dead)
		epoll_ctl(sup.epfd, EPOLL_CTL_DEL, w->fd, NULL);
	fail_pending(w);
	/* The worker may exit later (after a shutdown request): reap it then. */
	add_orphan(w->pid);
	w->next_release = sup.release;
	sup.release = w;
	pthread_mutex_unlock(&sup.dispatch);
	wake_supervisor();
}

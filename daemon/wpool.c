/* The pool of pre-started workers. Lock order: the supervisor's dispatch
 * lock (held around on_dead), then pool.lock; so wpool_take() lets go of
 * pool.lock before it hands a connection over, and an entry it popped stays
 * allocated until wconn_rebind() has said whether the worker still lives. */
#include "daemon/wpool.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "daemon/dlog.h"

#define SPAWN_TIMEOUT_MS 5000
/* A refill waits this long after a take, so the replacement's exec does not
 * compete for the CPU with the VM that the taken worker is building. */
#define REFILL_DELAY_MS 20
/* After a worker fails to start, retries back off up to this. */
#define BACKOFF_MAX_MS 30000

struct idle {
	struct wconn *w;
	pid_t pid;
	unsigned n; /* see file_of() */
	bool dead;
	bool counted; /* in pool.live */
	char reason[256];
	struct idle *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct idle *list; /* idle workers, dead ones included until reaped */
	unsigned live;	   /* entries counted: in the list and not dead */
	unsigned size;
	unsigned next_n;
	bool running, stop;
	struct timespec not_before; /* next refill (delay or back-off) */
	pthread_t thread;
	char dir[PATH_MAX - 32];
	const char *vmm;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* <chvd pid>-<n>: no name repeats across chvd restarts, so a VM's worker
 * started from the pool by an earlier chvd never shares its command line's
 * socket path with a new idle worker. */
static void file_of(unsigned n, const char *ext, char *buf, size_t len)
{
	snprintf(buf, len, "%s/%d-%u.%s", pool.dir, (int)getpid(), n, ext);
}

static void remove_files(unsigned n)
{
	char p[PATH_MAX];
	file_of(n, "sock", p, sizeof(p));
	unlink(p);
	file_of(n, "log", p, sizeof(p));
	unlink(p);
}

static void after_ms(struct timespec *t, long ms)
{
	clock_gettime(CLOCK_MONOTONIC, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

static bool reached(const struct timespec *t)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec > t->tv_sec || (now.tv_sec == t->tv_sec && now.tv_nsec >= t->tv_nsec);
}

/* ---- an idle worker's callbacks (supervisor thread) ---- */

static void idle_notice(void *ctx, const Chv__Worker__V1__Notice *n)
{
	(void)ctx;
	(void)n; /* an idle worker has nothing to say */
}

static void idle_dead(void *ctx, const char *reason)
{
	struct idle *e = ctx;
	pthread_mutex_lock(&pool.lock);
	e->dead = true;
	snprintf(e->reason, sizeof(e->reason), "%s", reason);
	if (e->counted)
		pool.live--;
	e->counted = false;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
}

static const struct wconn_ops idle_ops = {idle_notice, idle_dead};

/* ---- the refill thread ---- */

/* Closes an entry no longer in the list (pool.lock not held), killing its
 * worker when kill_it and it still lives; returns the pid killed, or 0. */
static pid_t discard(struct idle *e, bool kill_it)
{
	wconn_close(e->w); /* no callback after this: e->dead is final */
	pid_t killed = 0;
	if (kill_it && !e->dead && e->pid > 0 && kill(e->pid, SIGKILL) == 0)
		killed = e->pid;
	remove_files(e->n);
	free(e);
	return killed;
}

/* Takes the dead entries out of the list. Caller holds pool.lock. */
static struct idle *unlink_dead(void)
{
	struct idle *dead = NULL;
	for (struct idle **pp = &pool.list; *pp;) {
		struct idle *e = *pp;
		if (e->dead) {
			*pp = e->next;
			e->next = dead;
			dead = e;
		} else {
			pp = &e->next;
		}
	}
	return dead;
}

/* Starts one worker and connects to it (pool.lock not held). */
static int spawn_one(unsigned n, struct idle **out, struct chv_err *err)
{
	char sock[PATH_MAX], logp[PATH_MAX];
	file_of(n, "sock", sock, sizeof(sock));
	file_of(n, "log", logp, sizeof(logp));
	struct idle *e = calloc(1, sizeof(*e));
	if (!e)
		return chv_err_set(err, -ENOMEM, "out of memory");
	e->n = n;
	int r = wconn_spawn(pool.vmm, sock, logp, SPAWN_TIMEOUT_MS, &e->pid, err);
	if (r == 0 && (r = wconn_connect(&e->w, sock, e->pid, logp, &idle_ops, e, err)) < 0)
		wconn_kill_spawned(e->pid);
	if (r < 0) {
		remove_files(n);
		free(e);
		return r;
	}
	*out = e;
	return 0;
}

static void *refill(void *arg)
{
	(void)arg;
	long backoff = 0;
	pthread_mutex_lock(&pool.lock);
	while (!pool.stop) {
		struct idle *dead = unlink_dead();
		if (dead) {
			pthread_mutex_unlock(&pool.lock);
			while (dead) {
				struct idle *next = dead->next;
				dlog(DLOG_WARNING, NULL, "idle worker %u died (%s); replacing it",
				     dead->n, dead->reason);
				(void)discard(dead, false);
				dead = next;
			}
			pthread_mutex_lock(&pool.lock);
			continue;
		}
		if (pool.live >= pool.size || !reached(&pool.not_before)) {
			if (pool.live >= pool.size)
				pthread_cond_wait(&pool.cond, &pool.lock);
			else
				pthread_cond_timedwait(&pool.cond, &pool.lock, &pool.not_before);
			continue;
		}
		unsigned n = pool.next_n++;
		pthread_mutex_unlock(&pool.lock);
		struct chv_err err = {0};
		struct idle *e = NULL;
		int r = spawn_one(n, &e, &err);
		pthread_mutex_lock(&pool.lock);
		if (r < 0) {
			backoff = backoff ? backoff * 2 : 250;
			if (backoff > BACKOFF_MAX_MS)
				backoff = BACKOFF_MAX_MS;
			dlog(DLOG_ERR, NULL, "cannot start an idle worker (retrying in %ld ms): %s",
			     backoff, err.msg);
			after_ms(&pool.not_before, backoff);
			continue;
		}
		backoff = 0;
		/* It may have died already: then the next round reaps it. */
		e->counted = !e->dead;
		pool.live += e->counted;
		e->next = pool.list;
		pool.list = e;
		dlog(DLOG_DEBUG, NULL, "idle worker %u ready (pid %d), %u idle", n, e->pid,
		     pool.live);
	}
	pthread_mutex_unlock(&pool.lock);
	return NULL;
}

/* ---- start-up ---- */

/* A pool worker that a previous chvd left behind holds no VM: it goes. The
 * kernel names who listens on the socket, so no pid file can lie. */
static void kill_leftover(const char *path)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	if (strlen(path) >= sizeof(a.sun_path))
		return;
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
		struct ucred cred;
		socklen_t len = sizeof(cred);
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.pid > 0) {
			dlog(DLOG_NOTICE, NULL, "killing idle worker %d left at %s", cred.pid,
			     path);
			kill(cred.pid, SIGKILL);
		}
	}
	if (fd >= 0)
		close(fd);
}

static void clean_dir(void)
{
	DIR *d = opendir(pool.dir);
	if (!d)
		return;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/%s", pool.dir, de->d_name) >= (int)sizeof(p))
			continue;
		size_t n = strlen(de->d_name);
		if (n > 5 && strcmp(de->d_name + n - 5, ".sock") == 0)
			kill_leftover(p);
		unlink(p);
	}
	closedir(d);
}

int wpool_start(const struct wpool_config *c, struct chv_err *err)
{
	if (snprintf(pool.dir, sizeof(pool.dir), "%s/pool", c->runtime_dir) >=
	    (int)sizeof(pool.dir))
		return chv_err_set(err, -ENAMETOOLONG, "--runtime-dir: %s is too long",
				   c->runtime_dir);
	if (mkdir(pool.dir, 0700) < 0 && errno != EEXIST)
		return chv_err_set(err, -errno, "cannot create %s: %s", pool.dir, strerror(errno));
	clean_dir();
	/* not_before is on the monotonic clock, and so must the waits be
	 * (a realtime wait on it would return at once, spinning). */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&pool.cond, &ca);
	pthread_condattr_destroy(&ca);
	pool.vmm = c->vmm_path;
	pool.size = c->size;
	pool.stop = false;
	if (!pool.size)
		return 0;
	int r = pthread_create(&pool.thread, NULL, refill, NULL);
	if (r)
		return chv_err_set(err, -r, "worker pool thread: %s", strerror(r));
	pthread_setname_np(pool.thread, "wpool");
	pool.running = true;
	return 0;
}

/* ---- taking and stopping ---- */

int wpool_take(const struct wconn_ops *ops, void *ctx, const char *log_to, struct wconn **w,
	       pid_t *pid)
{
	for (;;) {
		pthread_mutex_lock(&pool.lock);
		struct idle **pp = &pool.list;
		while (*pp && (*pp)->dead)
			pp = &(*pp)->next;
		struct idle *e = *pp;
		if (e) {
			*pp = e->next;
			pool.live -= e->counted;
			e->counted = false;
			after_ms(&pool.not_before, REFILL_DELAY_MS);
			pthread_cond_broadcast(&pool.cond);
		}
		pthread_mutex_unlock(&pool.lock);
		if (!e)
			return -EAGAIN;
		if (!wconn_rebind(e->w, ops, ctx)) {
			/* It died between the two locks. */
			(void)discard(e, false);
			continue;
		}
		char logp[PATH_MAX];
		file_of(e->n, "log", logp, sizeof(logp));
		if (rename(logp, log_to) < 0)
			dlog(DLOG_WARNING, NULL, "cannot move %s to %s: %s", logp, log_to,
			     strerror(errno));
		else
			wconn_set_log(e->w, log_to);
		*w = e->w;
		*pid = e->pid;
		free(e);
		return 0;
	}
}

unsigned wpool_idle(void)
{
	pthread_mutex_lock(&pool.lock);
	unsigned n = pool.live;
	pthread_mutex_unlock(&pool.lock);
	return n;
}

void wpool_stop(void)
{
	if (pool.running) {
		pthread_mutex_lock(&pool.lock);
		pool.stop = true;
		pthread_cond_broadcast(&pool.cond);
		pthread_mutex_unlock(&pool.lock);
		pthread_join(pool.thread, NULL);
		pool.running = false;
	}
	pthread_mutex_lock(&pool.lock);
	struct idle *e = pool.list;
	pool.list = NULL;
	pool.live = 0;
	pthread_mutex_unlock(&pool.lock);
	while (e) {
		struct idle *next = e->next;
		pid_t pid = discard(e, true);
		if (pid > 0)
			waitpid(pid, NULL, 0);
		dlog(DLOG_DEBUG, NULL, "idle worker %d stopped", pid);
		e = next;
	}
}

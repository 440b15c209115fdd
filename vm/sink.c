#include "vm/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vm/byte_ring.h"
#include "vm/log.h"
#include "vm/seccomp.h"

#define SINK_CHUNK    16384
#define SINK_DRAIN_MS 500

struct sink {
	enum console_mode mode;
	const char *opt;
	pthread_mutex_t lock;

	int file_fd; /* FILE */
	uint64_t tx; /* bytes given to sink_write, under lock */

	sink_output_fn out_fn; /* callback mode */
	void *out_ctx;

	/* TTY and SOCKET: the ring, written by sink_write, drained by the thread.
	 * head and tail count bytes since the start; [tail, head) is queued. */
	struct byte_ring ring; /* buf NULL: no ring (off, null, file, callback) */
	uint64_t dropped;
	bool kicked;	  /* a wake-up is pending for the thread */
	bool out_blocked; /* the thread waits for POLLOUT, no need to wake it */
	bool stopping;
	sink_input_fn in_fn;
	void *in_ctx;

	/* Owned by the thread; out_fd also read by writers under lock. */
	int out_fd, in_fd;
	bool out_is_sock;
	bool client; /* SOCKET: out_fd == in_fd is the connected client */
	int listen_fd;
	int wake_fd;
	pthread_t thread;
	bool thread_started;
	/* The thread's filter install, reported before sink_open returns. */
	sem_t filtered;
	struct chv_err filter_err;
	uint8_t chunk[SINK_CHUNK];

	/* SOCKET: the file we created, to remove only that one at close. */
	char *path;
	dev_t sock_dev;
	ino_t sock_ino;
	bool tty_owner;
};

/* The terminal of stdin as it was before raw mode. */
static pthread_mutex_t tty_lock = PTHREAD_MUTEX_INITIALIZER;
static bool tty_in_use;
static struct termios tty_saved;
static volatile sig_atomic_t tty_saved_valid;
static bool tty_atexit_done;

void sink_tty_restore(void)
{
	if (tty_saved_valid) {
		tcsetattr(STDIN_FILENO, TCSANOW, &tty_saved);
		tty_saved_valid = 0;
	}
}

static void sink_tty_raw(void)
{
	struct termios raw;

	if (!isatty(STDIN_FILENO) || tcgetattr(STDIN_FILENO, &tty_saved) < 0)
		return;
	raw = tty_saved;
	/* Keys go to the guest untranslated (Ctrl-C included); output
	 * processing (OPOST) stays on so lone "\n" from a guest still
	 * returns the carriage. */
	raw.c_iflag &=
	    (tcflag_t) ~(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR | IGNCR | ICRNL | IXON);
	raw.c_lflag &= (tcflag_t) ~(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	raw.c_cflag &= (tcflag_t) ~(CSIZE | PARENB);
	raw.c_cflag |= CS8;
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	tty_saved_valid = 1;
	if (!tty_atexit_done && atexit(sink_tty_restore) == 0)
		tty_atexit_done = true;
	if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0)
		tty_saved_valid = 0;
}

static void sink_wake(struct sink *s)
{
	uint64_t one = 1;
	ssize_t r = write(s->wake_fd, &one, sizeof(one));
	(void)r; /* only fails when the counter is huge: a wake-up is pending anyway */
}

void sink_write(struct sink *s, const uint8_t *buf, size_t n)
{
	if (!s || !buf || !n)
		return;
	if (s->out_fn) {
		pthread_mutex_lock(&s->lock);
		s->tx += n;
		s->out_fn(s->out_ctx, buf, n);
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (s->mode == CONSOLE_FILE) {
		pthread_mutex_lock(&s->lock);
		s->tx += n;
		while (n) {
			ssize_t w = write(s->file_fd, buf, n);
			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				s->dropped += n;
				break;
			}
			buf += w;
			n -= (size_t)w;
		}
		pthread_mutex_unlock(&s->lock);
		return;
	}
	if (!s->ring.buf) {
		pthread_mutex_lock(&s->lock);
		s->tx += n; /* off, null: dropped by design, still counted */
		pthread_mutex_unlock(&s->lock);
		return;
	}

	bool wake = false;
	pthread_mutex_lock(&s->lock);
	s->tx += n;
	s->dropped += byte_ring_put(&s->ring, buf, n);
	/* Without a reader, or with one that is not keeping up, the bytes
	 * just wait: no need to wake the thread for every byte. */
	if (!s->kicked && s->out_fd >= 0 && !s->out_blocked) {
		s->kicked = true;
		wake = true;
	}
	pthread_mutex_unlock(&s->lock);
	if (wake)
		sink_wake(s);
}

static void sink_out_write(void *ctx, const uint8_t *buf, size_t n)
{
	sink_write(ctx, buf, n);
}

struct out_sink sink_out(struct sink *s)
{
	struct out_sink o = {.write = s ? sink_out_write : NULL, .ctx = s};
	return o;
}

uint64_t sink_dropped(struct sink *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	uint64_t d = s->dropped;
	pthread_mutex_unlock(&s->lock);
	return d;
}

uint64_t sink_tx_bytes(struct sink *s)
{
	if (!s)
		return 0;
	pthread_mutex_lock(&s->lock);
	uint64_t t = s->tx;
	pthread_mutex_unlock(&s->lock);
	return t;
}

void sink_set_input(struct sink *s, sink_input_fn fn, void *ctx)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->in_fn = fn;
	s->in_ctx = ctx;
	pthread_mutex_unlock(&s->lock);
	if (s->wake_fd >= 0)
		sink_wake(s); /* the thread polls the input fd only with a callback */
}

/* Thread side. */

static void sink_drop_client(struct sink *s)
{
	int fd = s->out_fd;

	pthread_mutex_lock(&s->lock);
	s->out_fd = -1;
	s->in_fd = -1;
	s->client = false;
	s->out_blocked = false;
	pthread_mutex_unlock(&s->lock);
	close(fd);
	log_info("%s socket=%s: client disconnected", s->opt, s->path);
}

static void sink_drop_output(struct sink *s, int e)
{
	if (s->client) {
		sink_drop_client(s);
		return;
	}
	log_warn("%s tty: writing to stdout failed (%s): output dropped from now on", s->opt,
		 strerror(e));
	pthread_mutex_lock(&s->lock);
	close(s->out_fd);
	s->out_fd = -1;
	s->out_blocked = false;
	pthread_mutex_unlock(&s->lock);
}

/* Writes queued output until the ring is empty (0), the reader is slow
 * (-EAGAIN) or the output failed (other -errno; the caller drops it). */
static int sink_flush(struct sink *s)
{
	for (;;) {
		pthread_mutex_lock(&s->lock);
		uint64_t pos = s->ring.tail;
		size_t n = byte_ring_copy(&s->ring, pos, s->chunk, SINK_CHUNK);
		s->out_blocked = false;
		pthread_mutex_unlock(&s->lock);
		if (!n || s->out_fd < 0)
			return 0;

		ssize_t w;
		if (s->out_is_sock)
			w = send(s->out_fd, s->chunk, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		else
			w = write(s->out_fd, s->chunk, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			pthread_mutex_lock(&s->lock);
			s->out_blocked = true;
			pthread_mutex_unlock(&s->lock);
			return -EAGAIN;
		}
		if (w < 0)
			return -errno;
		pthread_mutex_lock(&s->lock);
		/* Writers may have dropped the oldest bytes meanwhile: those we
		 * just sent were not lost after all. */
		uint64_t sent_end = pos + (uint64_t)w;
		if (s->ring.tail > pos)
			s->dropped -= (s->ring.tail < sent_end ? s->ring.tail : sent_end) - pos;
		if (s->ring.tail < sent_end)
			s->ring.tail = sent_end;
		pthread_mutex_unlock(&s->lock);
	}
}

static void sink_accept(struct sink *s)
{
	int fd = accept4(s->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return; /* the client went away already, or EMFILE: retry later */
	pthread_mutex_lock(&s->lock);
	s->out_fd = fd;
	s->in_fd = fd;
	s->client = true;
	s->out_blocked = false;
	pthread_mutex_unlock(&s->lock);
	log_info("%s socket=%s: client connected", s->opt, s->path);
}

static void sink_read_input(struct sink *s, sink_input_fn fn, void *ctx)
{
	uint8_t buf[4096];
	ssize_t r = read(s->in_fd, buf, sizeof(buf));

	if (r > 0) {
		fn(ctx, buf, (size_t)r);
		return;
	}
	if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
		return;
	/* End of input. */
	if (s->client) {
		sink_drop_client(s);
	} else {
		pthread_mutex_lock(&s->lock);
		s->in_fd = -1;
		pthread_mutex_unlock(&s->lock);
	}
}

static void sink_drain_at_stop(struct sink *s)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (s->out_fd >= 0) {
		int rc = sink_flush(s);
		if (rc == 0)
			return;
		if (rc != -EAGAIN) {
			sink_drop_output(s, -rc);
			return;
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		long ms = (long)(t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000;
		if (ms >= SINK_DRAIN_MS)
			return;
		struct pollfd p = {.fd = s->out_fd, .events = POLLOUT};
		(void)poll(&p, 1, (int)(SINK_DRAIN_MS - ms));
	}
}

static void *sink_thread(void *arg)
{
	struct sink *s = arg;

	int filtered = chv_seccomp_thread(SECCOMP_SINK, &s->filter_err);
	sem_post(&s->filtered);
	if (filtered < 0)
		return NULL;
	for (;;) {
		struct pollfd pfd[3];
		int n = 0, i_wake, i_listen = -1, i_io = -1;

		pthread_mutex_lock(&s->lock);
		bool stop = s->stopping;
		sink_input_fn fn = s->in_fn;
		void *ctx = s->in_ctx;
		bool pending = byte_ring_len(&s->ring) != 0;
		bool blocked = s->out_blocked;
		pthread_mutex_unlock(&s->lock);
		if (stop)
			break;

		i_wake = n;
		pfd[n++] = (struct pollfd){.fd = s->wake_fd, .events = POLLIN};
		if (s->listen_fd >= 0 && !s->client) {
			i_listen = n;
			pfd[n++] = (struct pollfd){.fd = s->listen_fd, .events = POLLIN};
		}
		if (s->client) {
			/* Always polled: POLLHUP tells of a disconnect. */
			i_io = n;
			pfd[n++] =
			    (struct pollfd){.fd = s->in_fd,
					    .events = (short)((fn ? POLLIN : 0) |
							      (pending && blocked ? POLLOUT : 0))};
		} else {
			if (s->in_fd >= 0 && fn) {
				i_io = n;
				pfd[n++] = (struct pollfd){.fd = s->in_fd, .events = POLLIN};
			}
			if (s->out_fd >= 0 && pending && blocked)
				pfd[n++] = (struct pollfd){.fd = s->out_fd, .events = POLLOUT};
		}

		if (poll(pfd, (nfds_t)n, -1) < 0) {
			if (errno == EINTR)
				continue;
			log_error("%s: poll failed (%s): console input stopped", s->opt,
				  strerror(errno));
			break;
		}
		if (pfd[i_wake].revents) {
			uint64_t v;
			ssize_t r = read(s->wake_fd, &v, sizeof(v));
			(void)r;
			pthread_mutex_lock(&s->lock);
			s->kicked = false;
			pthread_mutex_unlock(&s->lock);
		}
		if (i_listen >= 0 && (pfd[i_listen].revents & POLLIN))
			sink_accept(s);
		if (i_io >= 0 && pfd[i_io].revents) {
			short re = pfd[i_io].revents;
			if (fn && (re & POLLIN))
				sink_read_input(s, fn, ctx);
			else if (re & (POLLHUP | POLLERR | POLLNVAL)) {
				if (s->client)
					sink_drop_client(s);
				else
					s->in_fd = -1;
			}
		}
		if (s->out_fd >= 0) {
			int rc = sink_flush(s);
			if (rc < 0 && rc != -EAGAIN)
				sink_drop_output(s, -rc);
		}
	}
	sink_drain_at_stop(s);
	return NULL;
}

static int sink_start_thread(struct sink *s)
{
	sigset_t all, old;

	if (byte_ring_init(&s->ring, SINK_RING_SIZE) < 0)
		return -ENOMEM;
	s->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wake_fd < 0)
		return -errno;
	/* Signals are for the VMM's main thread, and a write to a closed
	 * pipe must give this thread EPIPE, not kill the process. */
	sigfillset(&all);
	if (sem_init(&s->filtered, 0, 0) < 0)
		return -errno;
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&s->thread, NULL, sink_thread, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc) {
		sem_destroy(&s->filtered);
		return -rc;
	}
	/* A thread whose filter failed is gone: the sink fails to open. */
	while (sem_wait(&s->filtered) < 0 && errno == EINTR)
		;
	sem_destroy(&s->filtered);
	if (s->filter_err.code < 0) {
		pthread_join(s->thread, NULL);
		return s->filter_err.code;
	}
	s->thread_started = true;
	return 0;
}

/* The message for a thread that could not start: its filter's, or errno's. */
static int sink_thread_error(struct sink *s, int rc, const char *what, struct chv_err *err)
{
	if (s->filter_err.code < 0)
		return chv_err_set(err, rc, "%s %s: %s", s->opt, what, s->filter_err.msg);
	return chv_err_set(err, rc, "%s %s: cannot start the console thread: %s", s->opt, what,
			   strerror(-rc));
}

/* Opening. */

static int sink_open_file(struct sink *s, const char *path, struct chv_err *err)
{
	s->file_fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOCTTY, 0600);
	if (s->file_fd < 0) {
		int e = errno;
		return chv_err_set(err, -e, "%s file=%s: cannot open: %s", s->opt, path,
				   strerror(e));
	}
	return 0;
}

/* A second description of stdout that can be non-blocking without changing
 * the one the shell shares with other processes. */
static int sink_stdout_fd(bool *is_sock)
{
	struct stat st;

	*is_sock = false;
	if (fstat(STDOUT_FILENO, &st) < 0)
		return -1;
	if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
		int fd = open("/proc/self/fd/1", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
		if (fd >= 0)
			return fd;
	}
	*is_sock = S_ISSOCK(st.st_mode);
	return fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
}

static int sink_open_tty(struct sink *s, struct chv_err *err)
{
	pthread_mutex_lock(&tty_lock);
	if (tty_in_use) {
		pthread_mutex_unlock(&tty_lock);
		return chv_err_set(err, -EBUSY,
				   "%s tty: stdin/stdout are already used by another console",
				   s->opt);
	}
	tty_in_use = true;
	s->tty_owner = true;
	sink_tty_raw();
	pthread_mutex_unlock(&tty_lock);

	struct stat st;
	s->out_fd = sink_stdout_fd(&s->out_is_sock);
	s->in_fd = fstat(STDIN_FILENO, &st) == 0 ? STDIN_FILENO : -1;
	int rc = sink_start_thread(s);
	if (rc < 0)
		return sink_thread_error(s, rc, "tty", err);
	return 0;
}

/* A socket file left by a dead VMM is replaced; a live one, or anything
 * that is not a socket, is not ours to remove. */
static int sink_check_socket_path(struct sink *s, const struct sockaddr_un *sa, struct chv_err *err)
{
	struct stat st;

	if (lstat(sa->sun_path, &st) < 0) {
		if (errno == ENOENT)
			return 0;
		int e = errno;
		return chv_err_set(err, -e, "%s socket=%s: %s", s->opt, sa->sun_path, strerror(e));
	}
	if (!S_ISSOCK(st.st_mode))
		return chv_err_set(
		    err, -EEXIST,
		    "%s socket=%s: the path exists and is not a socket; not replacing it", s->opt,
		    sa->sun_path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		return chv_err_set(err, -e, "%s socket=%s: socket: %s", s->opt, sa->sun_path,
				   strerror(e));
	}
	int rc = connect(fd, (const struct sockaddr *)sa, sizeof(*sa));
	int e = errno;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS)
		return chv_err_set(err, -EADDRINUSE,
				   "%s socket=%s: another process is listening on it", s->opt,
				   sa->sun_path);
	if (e != ECONNREFUSED)
		return chv_err_set(err, -e, "%s socket=%s: cannot check the existing socket: %s",
				   s->opt, sa->sun_path, strerror(e));
	if (unlink(sa->sun_path) < 0 && errno != ENOENT) {
		e = errno;
		return chv_err_set(err, -e, "%s socket=%s: cannot remove the stale socket: %s",
				   s->opt, sa->sun_path, strerror(e));
	}
	return 0;
}

static int sink_open_socket(struct sink *s, const char *path, struct chv_err *err)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return chv_err_set(err, -ENAMETOOLONG,
				   "%s socket=%s: the path is longer than %zu bytes", s->opt, path,
				   sizeof(sa.sun_path) - 1);
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int rc = sink_check_socket_path(s, &sa, err);
	if (rc < 0)
		return rc;

	s->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->listen_fd < 0) {
		int e = errno;
		return chv_err_set(err, -e, "%s socket=%s: socket: %s", s->opt, path, strerror(e));
	}
	if (bind(s->listen_fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;
		return chv_err_set(err, -e, "%s socket=%s: bind: %s", s->opt, path, strerror(e));
	}
	s->path = strdup(path);
	if (!s->path || stat(path, &st) < 0) {
		int e = s->path ? errno : ENOMEM;
		unlink(path);
		return chv_err_set(err, -e, "%s socket=%s: %s", s->opt, path, strerror(e));
	}
	s->sock_dev = st.st_dev;
	s->sock_ino = st.st_ino;
	/* The console is the guest's root shell: owner only. */
	if (chmod(path, 0600) < 0 || listen(s->listen_fd, 1) < 0) {
		int e = errno;
		return chv_err_set(err, -e, "%s socket=%s: %s", s->opt, path, strerror(e));
	}
	rc = sink_start_thread(s);
	if (rc < 0) {
		char what[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
		snprintf(what, sizeof(what), "socket=%s", path);
		return sink_thread_error(s, rc, what, err);
	}
	return 0;
}

static const char *sink_mode_key(enum console_mode m)
{
	return m == CONSOLE_FILE ? "file" : "socket";
}

struct sink *sink_open_opt(const struct console_config *cc, const char *opt, struct chv_err *err)
{
	struct sink *s;
	int rc;

	if (!opt)
		opt = "--serial";
	if (!cc) {
		chv_err_set(err, -EINVAL, "%s: no configuration", opt);
		errno = EINVAL;
		return NULL;
	}
	if ((cc->mode == CONSOLE_FILE || cc->mode == CONSOLE_SOCKET) &&
	    (!cc->path || !cc->path[0])) {
		chv_err_set(err, -EINVAL, "%s %s=: a path is required", opt,
			    sink_mode_key(cc->mode));
		errno = EINVAL;
		return NULL;
	}
	if (cc->mode > CONSOLE_SOCKET) {
		chv_err_set(err, -EINVAL, "%s: unknown mode %d", opt, (int)cc->mode);
		errno = EINVAL;
		return NULL;
	}
	s = calloc(1, sizeof(*s));
	if (!s) {
		chv_err_set(err, -ENOMEM, "%s: out of memory", opt);
		errno = ENOMEM;
		return NULL;
	}
	s->mode = cc->mode;
	s->opt = opt;
	s->file_fd = s->out_fd = s->in_fd = s->listen_fd = s->wake_fd = -1;
	rc = pthread_mutex_init(&s->lock, NULL);
	if (rc) {
		free(s);
		chv_err_set(err, -rc, "%s: %s", opt, strerror(rc));
		errno = rc;
		return NULL;
	}
	switch (cc->mode) {
	case CONSOLE_FILE:
		rc = sink_open_file(s, cc->path, err);
		break;
	case CONSOLE_TTY:
		rc = sink_open_tty(s, err);
		break;
	case CONSOLE_SOCKET:
		rc = sink_open_socket(s, cc->path, err);
		break;
	default: /* off, null: output dropped */
		rc = 0;
		break;
	}
	if (rc < 0) {
		sink_close(s);
		errno = -rc;
		return NULL;
	}
	return s;
}

struct sink *sink_open_callback(sink_output_fn fn, void *ctx)
{
	if (!fn) {
		errno = EINVAL;
		return NULL;
	}
	struct sink *s = calloc(1, sizeof(*s));
	if (!s) {
		errno = ENOMEM;
		return NULL;
	}
	int rc = pthread_mutex_init(&s->lock, NULL);
	if (rc) {
		free(s);
		errno = rc;
		return NULL;
	}
	/* Its mode is nominally NULL: no ring, no thread, no files. */
	s->mode = CONSOLE_NULL;
	s->opt = "--serial";
	s->file_fd = s->out_fd = s->in_fd = s->listen_fd = s->wake_fd = -1;
	s->out_fn = fn;
	s->out_ctx = ctx;
	return s;
}

struct sink *sink_open(const struct console_config *cc, struct chv_err *err)
{
	return sink_open_opt(cc, "--serial", err);
}

void sink_close(struct sink *s)
{
	struct stat st;

	if (!s)
		return;
	if (s->thread_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_mutex_unlock(&s->lock);
		sink_wake(s);
		pthread_join(s->thread, NULL);
	}
	if (s->out_fd >= 0)
		close(s->out_fd); /* a client's fd is also in_fd; stdin stays open */
	if (s->listen_fd >= 0)
		close(s->listen_fd);
	/* Remove the socket file only if it is still the one we bound. */
	if (s->path && lstat(s->path, &st) == 0 && st.st_dev == s->sock_dev &&
	    st.st_ino == s->sock_ino)
		unlink(s->path);
	if (s->file_fd >= 0)
		close(s->file_fd);
	if (s->wake_fd >= 0)
		close(s->wake_fd);
	if (s->tty_owner) {
		pthread_mutex_lock(&tty_lock);
		sink_tty_restore();
		tty_in_use = false;
		pthread_mutex_unlock(&tty_lock);
	}
	pthread_mutex_destroy(&s->lock);
	free(s->path);
	byte_ring_free(&s->ring);
	free(s);
}

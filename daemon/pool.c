#include "daemon/pool.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct job {
	void (*fn)(void *arg);
	void *arg;
	struct job *next;
};

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;
	pthread_t *threads;
	unsigned n;
	bool stop;
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void *pool_thread(void *unused)
{
	(void)unused;
	for (;;) {
		pthread_mutex_lock(&pool.lock);
		while (!pool.head && !pool.stop)
			pthread_cond_wait(&pool.cond, &pool.lock);
		struct job *j = pool.head;
		if (j) {
			pool.head = j->next;
			if (!pool.head)
				pool.tail = NULL;
		}
		pthread_mutex_unlock(&pool.lock);
		if (!j)
			return NULL;
		j->fn(j->arg);
		free(j);
	}
}

int pool_start(unsigned threads, struct chv_err *err)
{
	pool.threads = calloc(threads, sizeof(*pool.threads));
	if (!pool.threads)
		return chv_err_set(err, -ENOMEM, "out of memory");
	for (unsigned i = 0; i < threads; i++) {
		int r = pthread_create(&pool.threads[i], NULL, pool_thread, NULL);
		if (r)
			return chv_err_set(err, -r, "pool thread: %s", strerror(r));
		pthread_setname_np(pool.threads[i], "rpc-work");
		pool.n++;
	}
	return 0;
}

int pool_submit(void (*fn)(void *arg), void *arg)
{
	struct job *j = malloc(sizeof(*j));
	if (!j)
		return -ENOMEM;
	*j = (struct job){fn, arg, NULL};
	pthread_mutex_lock(&pool.lock);
	if (pool.tail)
		pool.tail->next = j;
	else
		pool.head = j;
	pool.tail = j;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	return 0;
}

void pool_stop(void)
{
	pthread_mutex_lock(&pool.lock);
	pool.stop = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
	for (unsigned i = 0; i < pool.n; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.n = 0;
}
